"""Money: cost models (estimate before, actual after a call) and budgets with their ledger.
"""
