"""The flows prefect.yaml deploys, by entrypoint, for the tests that check the file and the server."""

FLOW_NAMES = {
    "flows.recalculate:recalculate_stats": "recalculate-stats",
    "flows.summaries:refresh_summaries": "refresh-summaries",
    "flows.benchmark_suite:run_benchmarks": "run-benchmarks",
    "flows.health:check_health": "check-health",
    "flows.maintenance:ingest_outcomes": "ingest-outcomes",
    "flows.maintenance:apply_retention": "apply-retention",
    "flows.maintenance:drain_queue": "drain-queue",
    "flows.route:routed_call": "routed-call",
    "flows.route:route_batch": "route-batch",
    "flows.experiments:analyze_experiments": "analyze-experiments",
    "flows.experiments:rollback_experiment": "rollback-experiment",
}

# Routing itself runs on demand (and on a schedule only through drain-queue); its work arrives with each
# run, so these are what a caller adds to the deployment's parameters.
_TASK = {"task_type": "qa", "payload": "What is 2 + 2?"}
ON_DEMAND = {
    "flows.route:routed_call": {"task": _TASK},
    "flows.route:route_batch": {"tasks": [_TASK]},
    "flows.experiments:rollback_experiment": {"experiment": "x"},
}
