"""Versioned schema of the store: each migration goes up and down in one transaction.

Timestamps are stored as UTC `TIMESTAMP`. Add a migration at the end to change the schema; never edit
one that has shipped, because stores in the field record which versions they applied.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: tuple[str, ...]
    down: tuple[str, ...]


EXECUTION_COLUMNS = """
    execution_id VARCHAR PRIMARY KEY,
    task_id VARCHAR NOT NULL,
    decision_id VARCHAR,
    attempt INTEGER NOT NULL DEFAULT 1,
    timestamp TIMESTAMP NOT NULL,
    task_type VARCHAR NOT NULL,
    category VARCHAR,
    session_id VARCHAR,
    description VARCHAR,
    repo VARCHAR,
    file_count INTEGER,
    estimated_tokens INTEGER,
    target VARCHAR NOT NULL,
    model_tier VARCHAR,
    pool_type VARCHAR,
    strategy VARCHAR,
    routing_confidence DOUBLE,
    complexity DOUBLE,
    success BOOLEAN NOT NULL,
    duration_ms DOUBLE NOT NULL,
    quality_score DOUBLE,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_estimate DOUBLE,
    actual_cost DOUBLE,
    error_type VARCHAR,
    error_message VARCHAR,
    user_acceptance BOOLEAN,
    user_rating INTEGER,
    peak_memory_mb DOUBLE,
    cpu_time_ms DOUBLE,
    solution_summary VARCHAR,
    embedding FLOAT[],
    metadata JSON
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        up=(
            f"CREATE TABLE executions ({EXECUTION_COLUMNS})",
            """CREATE TABLE routing_decisions (
                decision_id VARCHAR PRIMARY KEY, task_id VARCHAR NOT NULL, task_type VARCHAR NOT NULL,
                timestamp TIMESTAMP NOT NULL, strategy VARCHAR NOT NULL, pick VARCHAR NOT NULL,
                probability DOUBLE NOT NULL, reason VARCHAR, candidates JSON)""",
            """CREATE TABLE feedback (
                feedback_id VARCHAR PRIMARY KEY, execution_id VARCHAR, task_id VARCHAR NOT NULL,
                timestamp TIMESTAMP NOT NULL, acceptance BOOLEAN, rating INTEGER, verdict VARCHAR,
                comment VARCHAR)""",
            """CREATE TABLE benchmark_results (
                result_id VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, target VARCHAR NOT NULL,
                category VARCHAR NOT NULL, case_id VARCHAR NOT NULL, quality DOUBLE, duration_ms DOUBLE,
                cost DOUBLE, success BOOLEAN, error_type VARCHAR, timestamp TIMESTAMP NOT NULL)""",
            """CREATE TABLE solutions (
                solution_id VARCHAR PRIMARY KEY, task_id VARCHAR, task_type VARCHAR, category VARCHAR,
                target VARCHAR, summary VARCHAR, quality_score DOUBLE, embedding FLOAT[],
                created_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE quality_policies (
                policy_id VARCHAR PRIMARY KEY, task_type VARCHAR NOT NULL, min_quality DOUBLE,
                min_success_rate DOUBLE, max_latency_ms DOUBLE, max_cost DOUBLE,
                active BOOLEAN NOT NULL DEFAULT TRUE, updated_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE policies (
                policy_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, strategy VARCHAR NOT NULL,
                config JSON, active BOOLEAN NOT NULL DEFAULT FALSE, created_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE policy_adjustments (
                adjustment_id VARCHAR PRIMARY KEY, policy_id VARCHAR NOT NULL, timestamp TIMESTAMP NOT NULL,
                parameter VARCHAR NOT NULL, old_value JSON, new_value JSON, reason VARCHAR,
                applied_by VARCHAR)""",
            """CREATE TABLE policy_snapshots (
                snapshot_id VARCHAR PRIMARY KEY, policy_id VARCHAR NOT NULL, version INTEGER NOT NULL,
                config JSON NOT NULL, note VARCHAR, created_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE q_table (
                state VARCHAR NOT NULL, action VARCHAR NOT NULL, q_value DOUBLE NOT NULL,
                visits INTEGER NOT NULL DEFAULT 0, updated_at TIMESTAMP NOT NULL,
                PRIMARY KEY (state, action))""",
            """CREATE TABLE experiments (
                experiment_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, status VARCHAR NOT NULL,
                arms JSON NOT NULL, metric VARCHAR NOT NULL, config JSON, verdict VARCHAR,
                created_at TIMESTAMP NOT NULL, stopped_at TIMESTAMP)""",
            """CREATE TABLE experiment_assignments (
                assignment_id VARCHAR PRIMARY KEY, experiment_id VARCHAR NOT NULL, task_id VARCHAR NOT NULL,
                arm VARCHAR NOT NULL, propensity DOUBLE, timestamp TIMESTAMP NOT NULL)""",
            """CREATE TABLE experiment_metrics (
                experiment_id VARCHAR NOT NULL, arm VARCHAR NOT NULL, metric VARCHAR NOT NULL,
                n INTEGER NOT NULL, value DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
                computed_at TIMESTAMP NOT NULL, PRIMARY KEY (experiment_id, arm, metric, computed_at))""",
        ),
        down=(
            "DROP TABLE experiment_metrics",
            "DROP TABLE experiment_assignments",
            "DROP TABLE experiments",
            "DROP TABLE q_table",
            "DROP TABLE policy_snapshots",
            "DROP TABLE policy_adjustments",
            "DROP TABLE policies",
            "DROP TABLE quality_policies",
            "DROP TABLE solutions",
            "DROP TABLE benchmark_results",
            "DROP TABLE feedback",
            "DROP TABLE routing_decisions",
            "DROP TABLE executions",
        ),
    ),
    Migration(
        2,
        "sessions, budgets and the task queue",
        up=(
            """CREATE TABLE session_state (
                session_id VARCHAR PRIMARY KEY, target VARCHAR NOT NULL, category VARCHAR,
                keywords JSON, turns INTEGER NOT NULL DEFAULT 0, updated_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE budgets (
                budget_id VARCHAR PRIMARY KEY, period VARCHAR NOT NULL, scope VARCHAR NOT NULL,
                scope_value VARCHAR, limit_usd DOUBLE NOT NULL, policy VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE queued_tasks (
                task_id VARCHAR PRIMARY KEY, task JSON NOT NULL, reason VARCHAR,
                queued_at TIMESTAMP NOT NULL, not_before TIMESTAMP, status VARCHAR NOT NULL)""",
        ),
        down=("DROP TABLE queued_tasks", "DROP TABLE budgets", "DROP TABLE session_state"),
    ),
)

HEAD = MIGRATIONS[-1].version
