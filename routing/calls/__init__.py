"""What happens around one call to a target: the attempt plan and chain (fallback order), retries,
circuit breakers (live and replayed from history), grading answers, building outcome records,
redacting what a target sends back, and sampling which outcomes keep detail rows and events (sampling).
"""
