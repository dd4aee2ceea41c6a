"""Prefect flows of the adaptive router and the `adaptive-router` command line."""
