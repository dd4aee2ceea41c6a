"""What happens around one call to a target: the attempt plan and chain (fallback order), retries,
circuit breakers (live and replayed from history), grading answers, building outcome records, and
redacting what a target sends back.
"""
