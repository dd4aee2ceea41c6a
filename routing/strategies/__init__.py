"""Ways of ranking targets for a task: the Strategy protocol (base), the registry that builds one by
name, and each strategy: weighted, statistical, adaptive, bandits, Q-learning, ensemble, fixed,
contextual (linear Thompson sampling over prompt embeddings), cost-aware (with its objectives, optimizer
and Pareto frontier).
"""
