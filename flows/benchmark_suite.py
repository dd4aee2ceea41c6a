"""`run-benchmarks`: the benchmark suite against every healthy target, turned into capability scores.

Every target of the runtime is probed first; the healthy ones answer every case of the suite
(blocks/benchmarks/suite.toml) through the same `call-target` task routed calls use. Each answer is
graded 0-100 (routing.calls.grading.grade); speed and cost are measured; routing.evaluation.capability
weighs the three per category into one score per (target, category). Results go to benchmark_results,
scores to capability_scores (replaced by this run's; blocks/store/capabilities.py), and the published
state is rebuilt so routers pick the new scores up. A target that fails its probe is skipped and
reported, and failed calls score 0, so one failing target never fails the run; only a run with no
healthy target at all fails.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import BaseModel

from blocks.benchmarks import DEFAULT_SUITE, BenchmarkCase, load_suite
from blocks.store import utc_naive
from blocks.store.capabilities import save_benchmark_run
from blocks.store.snapshots import publish as publish_state
from blocks.targets.base import HealthReport, TargetBlock
from flows.route import DEFAULT_RUNTIME
from flows.runtime import get_runtime
from routing.calls.grading import grade, passes
from routing.evaluation.capability import BenchmarkResult, CapabilityTable
from routing.models import AttemptResult, Category, ErrorType
from tasks.calls import call_target


class CaseResult(BaseModel):
    result: BenchmarkResult
    success: bool
    error_type: str | None = None


class BenchmarkReport(BaseModel):
    run_id: str
    targets: list[str]
    skipped: dict[str, str]
    cases: int
    failures: int
    capabilities: dict[str, dict[str, float]]


@task(
    name="probe-target",
    task_run_name="probe {target.target_name}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def probe_target(target: TargetBlock) -> HealthReport:
    """The target's own health check; a probe that raises counts as unhealthy."""
    try:
        return run_coro_as_sync(target.health())
    except Exception as exc:  # noqa: BLE001 - a broken adapter is an unhealthy target, not a failed run
        return HealthReport(target=target.target_name, healthy=False, detail=f"{type(exc).__name__}: {exc}")


def score(case: BenchmarkCase, attempt: AttemptResult) -> CaseResult:
    """Grade one answer: quality 0 when the call failed; a call that answers below passing is wrong."""
    quality = grade(attempt.output, case.expected) if attempt.ok else 0.0
    success = attempt.ok and passes(quality)
    error = attempt.error_type or (None if success else ErrorType.WRONG_ANSWER)
    return CaseResult(
        result=BenchmarkResult(
            target=attempt.target,
            category=case.category,
            case_id=case.id,
            quality=quality,
            duration_ms=attempt.duration_ms,
            cost=attempt.cost,
        ),
        success=success,
        error_type=error.value if error else None,
    )


@flow(name="run-benchmarks", persist_result=False, flow_run_name="run-benchmarks on {runtime}")
def run_benchmarks(
    runtime: str = DEFAULT_RUNTIME,
    categories: list[Category] | None = None,
    per_category: int | None = None,
    suite: str | None = None,
    publish: bool = True,
) -> BenchmarkReport:
    """Benchmark every healthy target of `runtime` on `suite` (default: the shipped suite)."""
    logger = get_run_logger()
    routing = get_runtime(runtime)
    cases = load_suite(Path(suite) if suite else DEFAULT_SUITE).select(categories, per_category)
    if not cases:
        raise ValueError(f"no benchmark case matches categories={categories} per_category={per_category}")
    probes = [probe.result() for probe in [probe_target.submit(t) for t in routing.targets.values()]]
    healthy = [p.target for p in probes if p.healthy]
    skipped = {p.target: p.detail or "unhealthy" for p in probes if not p.healthy}
    for name, why in skipped.items():
        logger.warning("skipping %s: %s", name, why)
    if not healthy:
        raise RuntimeError(
            "no healthy target to benchmark: " + "; ".join(f"{t}: {w}" for t, w in skipped.items())
        )
    run_id = str(flow_run.get_id() or uuid.uuid4())
    results = _run_cases(routing.targets, healthy, cases)
    table = CapabilityTable.from_results(r.result for r in results)
    save_benchmark_run(
        routing.store, run_id, [(r.result, r.success, r.error_type) for r in results], table, utc_naive()
    )
    if publish:
        publish_state(routing.store, reason=f"run-benchmarks: {len(healthy)} targets, {len(cases)} cases")
    report = BenchmarkReport(
        run_id=run_id,
        targets=healthy,
        skipped=skipped,
        cases=len(cases),
        failures=sum(not r.success for r in results),
        capabilities=table.to_dict(),
    )
    create_markdown_artifact(
        _markdown(report, results), key="benchmark-report", description="Capability scores"
    )
    logger.info(
        "benchmarked %d targets on %d cases (%d failed answers)", len(healthy), len(cases), report.failures
    )
    return report


def _run_cases(
    targets: dict[str, TargetBlock], healthy: list[str], cases: list[BenchmarkCase]
) -> list[CaseResult]:
    progress = create_progress_artifact(
        0.0, key="run-benchmarks-progress", description="Benchmark calls done"
    )
    submitted = {}
    for name in healthy:
        for case in cases:
            future = call_target.submit(targets[name], case.task())
            submitted[future.task_run_id] = (case, future)
    results = []
    for done, future in enumerate(as_completed([f for _, f in submitted.values()]), start=1):
        case, _ = submitted[future.task_run_id]
        results.append(score(case, future.result()))
        if done % max(1, len(submitted) // 20) == 0 or done == len(submitted):
            update_progress_artifact(progress, 100.0 * done / len(submitted))
    return results


def _markdown(report: BenchmarkReport, results: list[CaseResult]) -> str:
    categories = [c.value for c in Category]
    lines = [
        f"# Benchmark run {report.run_id}",
        f"{len(report.targets)} targets x {report.cases} cases; {report.failures} answers failed.",
        "",
        "| target | " + " | ".join(categories) + " | mean quality |",
        "|---" * (len(categories) + 2) + "|",
    ]
    for target in report.targets:
        mine = [r.result.quality for r in results if r.result.target == target]
        scores = report.capabilities.get(target, {})
        cells = [f"{scores[c]:.1f}" if c in scores else "-" for c in categories]
        lines.append(f"| {target} | " + " | ".join(cells) + f" | {sum(mine) / len(mine):.1f} |")
    if report.skipped:
        lines += [
            "",
            "## Skipped (failed their health probe)",
            *(f"- **{t}**: {w}" for t, w in report.skipped.items()),
        ]
    return "\n".join(lines)
