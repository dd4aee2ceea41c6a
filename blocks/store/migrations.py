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


EMBEDDING_DIMENSIONS = 384
"""Size of stored prompt embeddings (all-MiniLM-L6-v2, the default embedder)."""

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

EXECUTION_COLUMNS_V9 = """
    {key}, task_id VARCHAR NOT NULL, decision_id VARCHAR, attempt INTEGER NOT NULL DEFAULT 1,
    timestamp TIMESTAMP NOT NULL, task_type VARCHAR NOT NULL, category VARCHAR, session_id VARCHAR,
    description VARCHAR, repo VARCHAR, file_count INTEGER, estimated_tokens BIGINT, target VARCHAR NOT NULL,
    model_tier VARCHAR, pool_type VARCHAR, strategy VARCHAR, routing_confidence DOUBLE, complexity DOUBLE,
    success BOOLEAN NOT NULL, duration_ms DOUBLE NOT NULL, quality_score DOUBLE, input_tokens BIGINT,
    output_tokens BIGINT, cost_estimate DOUBLE, actual_cost DOUBLE, error_type VARCHAR, error_message VARCHAR,
    user_acceptance BOOLEAN, user_rating INTEGER, peak_memory_mb DOUBLE, cpu_time_ms DOUBLE,
    solution_summary VARCHAR, embedding FLOAT[384], metadata JSON
"""
"""The executions columns as migrations 1, 6 and 8 left them (frozen: migration 10 rebuilds the table)."""


def _rebuild_executions(key: str, select: str) -> tuple[str, ...]:
    """Statements that copy executions into a table keyed by `key` (its first column), rows from `select`."""
    return (
        f"CREATE TABLE executions_rebuilt ({EXECUTION_COLUMNS_V9.format(key=key)})",
        f"INSERT INTO executions_rebuilt BY NAME {select}",
        "DROP TABLE executions",
        "ALTER TABLE executions_rebuilt RENAME TO executions",
    )


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
    Migration(
        3,
        "recalculated statistics, bandit priors, capability scores and published states",
        up=(
            """CREATE TABLE target_stats (
                target VARCHAR NOT NULL, task_type VARCHAR NOT NULL, n BIGINT NOT NULL,
                successes BIGINT NOT NULL, success_rate DOUBLE NOT NULL, success_low DOUBLE NOT NULL,
                success_high DOUBLE NOT NULL, p50_latency_ms DOUBLE NOT NULL, p95_latency_ms DOUBLE NOT NULL,
                p99_latency_ms DOUBLE NOT NULL, mean_latency_ms DOUBLE NOT NULL, latency_sd_ms DOUBLE NOT NULL,
                mean_cost DOUBLE NOT NULL, mean_quality DOUBLE, first_seen TIMESTAMP NOT NULL,
                last_seen TIMESTAMP NOT NULL, best_target VARCHAR NOT NULL, success_z DOUBLE, success_p DOUBLE,
                latency_t DOUBLE, latency_p DOUBLE, computed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (target, task_type))""",
            """CREATE TABLE target_priors (
                target VARCHAR NOT NULL, task_type VARCHAR NOT NULL, category VARCHAR NOT NULL,
                successes BIGINT NOT NULL, failures BIGINT NOT NULL, computed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (target, task_type, category))""",
            """CREATE TABLE stats_fingerprints (
                target VARCHAR PRIMARY KEY, executions BIGINT NOT NULL, last_timestamp TIMESTAMP NOT NULL,
                computed_at TIMESTAMP NOT NULL)""",
            """CREATE TABLE capability_scores (
                target VARCHAR NOT NULL, category VARCHAR NOT NULL, score DOUBLE NOT NULL,
                mean_quality DOUBLE NOT NULL, mean_duration_ms DOUBLE NOT NULL, mean_cost DOUBLE NOT NULL,
                cases INTEGER NOT NULL, run_id VARCHAR NOT NULL, computed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (target, category))""",
            """CREATE TABLE published_states (
                state_id VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, reason VARCHAR NOT NULL,
                path VARCHAR NOT NULL, stats_entries INTEGER NOT NULL, priors INTEGER NOT NULL,
                capabilities INTEGER NOT NULL, sha256 VARCHAR NOT NULL)""",
        ),
        down=(
            "DROP TABLE published_states",
            "DROP TABLE capability_scores",
            "DROP TABLE stats_fingerprints",
            "DROP TABLE target_priors",
            "DROP TABLE target_stats",
        ),
    ),
    Migration(
        4,
        "summary tables and health alerts",
        up=(
            """CREATE TABLE tier_daily_performance (
                day DATE NOT NULL, model_tier VARCHAR NOT NULL, executions BIGINT NOT NULL,
                successes BIGINT NOT NULL, success_rate DOUBLE NOT NULL, mean_quality DOUBLE,
                p50_latency_ms DOUBLE NOT NULL, p95_latency_ms DOUBLE NOT NULL, total_cost DOUBLE NOT NULL,
                mean_cost DOUBLE NOT NULL, refreshed_at TIMESTAMP NOT NULL, PRIMARY KEY (day, model_tier))""",
            """CREATE TABLE pool_hourly_performance (
                hour TIMESTAMP NOT NULL, pool_type VARCHAR NOT NULL, executions BIGINT NOT NULL,
                successes BIGINT NOT NULL, success_rate DOUBLE NOT NULL, mean_quality DOUBLE,
                p50_latency_ms DOUBLE NOT NULL, p95_latency_ms DOUBLE NOT NULL, total_cost DOUBLE NOT NULL,
                mean_cost DOUBLE NOT NULL, refreshed_at TIMESTAMP NOT NULL, PRIMARY KEY (hour, pool_type))""",
            """CREATE TABLE solution_patterns (
                category VARCHAR NOT NULL, task_type VARCHAR NOT NULL, target VARCHAR NOT NULL,
                executions BIGINT NOT NULL, successes BIGINT NOT NULL, success_rate DOUBLE NOT NULL,
                mean_quality DOUBLE, mean_cost DOUBLE NOT NULL, p50_latency_ms DOUBLE NOT NULL,
                top_error_type VARCHAR, top_error_share DOUBLE, first_seen TIMESTAMP NOT NULL,
                last_seen TIMESTAMP NOT NULL, refreshed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (category, task_type, target))""",
            """CREATE TABLE health_alerts (
                check_name VARCHAR NOT NULL, subject VARCHAR NOT NULL, active BOOLEAN NOT NULL,
                since TIMESTAMP NOT NULL, detail JSON, updated_at TIMESTAMP NOT NULL,
                PRIMARY KEY (check_name, subject))""",
        ),
        down=(
            "DROP TABLE health_alerts",
            "DROP TABLE solution_patterns",
            "DROP TABLE pool_hourly_performance",
            "DROP TABLE tier_daily_performance",
        ),
    ),
    Migration(
        5,
        "spend summaries per day, ISO week and calendar month",
        up=(
            """CREATE TABLE spend_daily (
                day DATE NOT NULL, target VARCHAR NOT NULL, task_type VARCHAR NOT NULL,
                executions BIGINT NOT NULL, successes BIGINT NOT NULL, total_cost DOUBLE NOT NULL,
                total_cost_estimate DOUBLE NOT NULL, refreshed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (day, target, task_type))""",
            """CREATE TABLE spend_weekly (
                week DATE NOT NULL, target VARCHAR NOT NULL, task_type VARCHAR NOT NULL,
                executions BIGINT NOT NULL, successes BIGINT NOT NULL, total_cost DOUBLE NOT NULL,
                total_cost_estimate DOUBLE NOT NULL, refreshed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (week, target, task_type))""",
            """CREATE TABLE spend_monthly (
                month DATE NOT NULL, target VARCHAR NOT NULL, task_type VARCHAR NOT NULL,
                executions BIGINT NOT NULL, successes BIGINT NOT NULL, total_cost DOUBLE NOT NULL,
                total_cost_estimate DOUBLE NOT NULL, refreshed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (month, target, task_type))""",
        ),
        down=("DROP TABLE spend_monthly", "DROP TABLE spend_weekly", "DROP TABLE spend_daily"),
    ),
    Migration(
        6,
        "token counts as BIGINT: a remote target reports them and may exceed 2^31",
        up=tuple(
            f"ALTER TABLE executions ALTER COLUMN {column} TYPE BIGINT"
            for column in ("input_tokens", "output_tokens", "estimated_tokens")
        ),
        # going down clamps what no longer fits rather than failing the downgrade
        down=tuple(
            statement
            for column in ("input_tokens", "output_tokens", "estimated_tokens")
            for statement in (
                f"UPDATE executions SET {column} = least({column}, 2147483647) WHERE {column} > 2147483647",
                f"ALTER TABLE executions ALTER COLUMN {column} TYPE INTEGER",
            )
        ),
    ),
    Migration(
        7,
        "experiment and variant on decisions; assignments keyed by decision; audited policy changes",
        up=(
            "ALTER TABLE routing_decisions ADD COLUMN experiment_id VARCHAR",
            "ALTER TABLE routing_decisions ADD COLUMN variant VARCHAR",
            "ALTER TABLE experiment_assignments ADD COLUMN decision_id VARCHAR",
            "ALTER TABLE experiment_assignments ADD COLUMN task_type VARCHAR",
            "ALTER TABLE policy_adjustments ADD COLUMN confidence DOUBLE",
            "ALTER TABLE policy_adjustments ADD COLUMN evidence_count INTEGER",
            "ALTER TABLE policy_adjustments ADD COLUMN snapshot_id VARCHAR",
        ),
        down=(
            "ALTER TABLE policy_adjustments DROP COLUMN snapshot_id",
            "ALTER TABLE policy_adjustments DROP COLUMN evidence_count",
            "ALTER TABLE policy_adjustments DROP COLUMN confidence",
            "ALTER TABLE experiment_assignments DROP COLUMN task_type",
            "ALTER TABLE experiment_assignments DROP COLUMN decision_id",
            "ALTER TABLE routing_decisions DROP COLUMN variant",
            "ALTER TABLE routing_decisions DROP COLUMN experiment_id",
        ),
    ),
    Migration(
        8,
        "fixed-size prompt embeddings (FLOAT[384]) for similarity search",
        # array_cosine_similarity needs a fixed-size ARRAY; a stored vector of another size is dropped.
        up=tuple(
            f"""ALTER TABLE {_table} ALTER COLUMN embedding SET DATA TYPE FLOAT[{EMBEDDING_DIMENSIONS}]
                USING CASE WHEN len(embedding) = {EMBEDDING_DIMENSIONS}
                THEN embedding::FLOAT[{EMBEDDING_DIMENSIONS}] END"""
            for _table in ("executions", "solutions")
        ),
        down=tuple(
            f"ALTER TABLE {_table} ALTER COLUMN embedding SET DATA TYPE FLOAT[] USING embedding::FLOAT[]"
            for _table in ("executions", "solutions")
        ),
    ),
    Migration(
        9,
        "drop quality_policies: nothing ever wrote or read it (quality floors are task constraints)",
        up=("DROP TABLE quality_policies",),
        down=(
            """CREATE TABLE quality_policies (
                policy_id VARCHAR PRIMARY KEY, task_type VARCHAR NOT NULL, min_quality DOUBLE,
                min_success_rate DOUBLE, max_latency_ms DOUBLE, max_cost DOUBLE,
                active BOOLEAN NOT NULL DEFAULT TRUE, updated_at TIMESTAMP NOT NULL)""",
        ),
    ),
    Migration(
        10,
        "executions without the primary-key index: ingestion keeps them unique (~70 fewer bytes a row)",
        # DuckDB cannot drop a primary key in place: copy into a table without it, then swap names.
        up=_rebuild_executions("execution_id VARCHAR NOT NULL", "SELECT * FROM executions"),
        # going down keeps the first row of an id that was written twice by hand (ingestion never does)
        down=_rebuild_executions(
            "execution_id VARCHAR PRIMARY KEY",
            "SELECT * FROM executions QUALIFY row_number() OVER (PARTITION BY execution_id ORDER BY timestamp) = 1",
        ),
    ),
    Migration(
        11,
        "sampling weights: a kept row stands for 1/rate outcomes (routing/calls/sampling.py); old rows weigh 1",
        up=(
            *(f"ALTER TABLE {_table} ADD COLUMN weight DOUBLE NOT NULL DEFAULT 1"
              for _table in ("executions", "routing_decisions")),
            "ALTER TABLE target_stats ADD COLUMN effective_n DOUBLE",  # the evidence behind n; NULL: n
        ),
        down=(
            "ALTER TABLE target_stats DROP COLUMN effective_n",
            *(f"ALTER TABLE {_table} DROP COLUMN weight" for _table in ("routing_decisions", "executions")),
        ),
    ),
)

HEAD = MIGRATIONS[-1].version

COMPACT_AFTER = frozenset({10})
"""Migrations that rebuild a large table: the file keeps the old copy's blocks as free space until
`DuckDBStore.compact()`, which `upgrade()` runs after them."""
