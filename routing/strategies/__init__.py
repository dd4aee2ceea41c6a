"""Ways of ranking targets for a task: the Strategy protocol (base), the registry that builds one by
name, and each strategy: weighted, statistical, adaptive, bandits, Q-learning, ensemble, cost-aware
(with its optimizer and Pareto frontier).
"""
