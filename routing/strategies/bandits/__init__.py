"""Multi-armed bandits: posteriors (Beta/normal and the propensity integral), learners (epsilon-greedy,
UCB1, Thompson sampling with their bookkeeping) and the adapter that makes a learner a routing Strategy.
"""
