"""Judging targets and policies without live traffic: benchmark capability scores, off-policy
estimators over logged decisions, and RouterBench replay.
"""
