"""The A/B-analysis flows: `analyze-experiments` (scheduled) and `rollback-experiment` (the automation's).

`analyze-experiments` ingests the spool, copies new assignments, analyses every running experiment
with the always-valid rule of routing.experiments.analysis, writes a markdown artifact per experiment
and emits `adaptive-router.experiment.concluded` (ship_treatment, keep_control, futile: the
experiment stops) or `adaptive-router.experiment.regressed` (rollback). With `rollback=True` it rolls
a regressed experiment back itself; deployed, it leaves that to the automation on `regressed`, which
runs `rollback-experiment` (idempotent: an experiment no longer running is left alone).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from blocks.store import Store, StoreError
from blocks.store.experiments import (
    finish_experiment,
    list_experiments,
    load_experiment,
    save_metrics,
    sync_assignments,
    variant_data,
)
from flows.maintenance import store_block
from routing.experiments.analysis import Analysis, Verdict, analyze
from routing.experiments.assignment import Experiment, Status

EVENTS = {"concluded": "adaptive-router.experiment.concluded", "regressed": "adaptive-router.experiment.regressed"}
_FINAL = {Verdict.SHIP_TREATMENT, Verdict.KEEP_CONTROL, Verdict.FUTILE}


def report(experiment: Experiment, analysis: Analysis) -> dict[str, Any]:
    """The JSON `ab-test analyze --json` prints and the flow returns."""
    return {
        "name": experiment.name,
        "status": experiment.status.value,
        "decision": analysis.decision.value,
        "reason": analysis.reason,
        "winner": analysis.winner,
        "metric": analysis.metric,
        "pvalue": analysis.pvalue,
        "srm_pvalue": analysis.srm_pvalue,
        "srm": analysis.srm,
        "variants": {
            v.name: {**v.model_dump(exclude={"name"}), "policy": experiment.variant(v.name).policy.spec,
                     "weight": experiment.variant(v.name).weight}
            for v in analysis.variants
        },
        "comparisons": [c.model_dump(mode="json") for c in analysis.comparisons],
        "snapshot_id": experiment.snapshot_id,
    }


def analyze_one(
    store: Store, experiment: Experiment, act: bool = True, rollback: bool = True
) -> tuple[Experiment, Analysis]:
    """Analyse one experiment now; with `act`, a verdict stops it, and with `rollback` too a regression
    (restoring its snapshot)."""
    analysis = analyze(variant_data(store, experiment), experiment.weights, experiment.config)
    save_metrics(store, experiment, analysis)
    if act and experiment.status is Status.RUNNING:
        if analysis.decision is Verdict.ROLLBACK and rollback:
            experiment = finish_experiment(store, experiment.name, Status.ROLLED_BACK, analysis.decision.value)
        elif analysis.decision in _FINAL:
            experiment = finish_experiment(store, experiment.name, Status.CONCLUDED, analysis.decision.value)
    return experiment, analysis


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def markdown(experiment: Experiment, analysis: Analysis) -> str:
    lines = [f"# Experiment {experiment.name}: {analysis.decision.value}", "", analysis.reason, "",
             "| variant | policy | traffic | tasks | success (95% Wilson) | mean reward | mean cost | p95 ms | errors | P(best) |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for v in analysis.variants:
        policy = experiment.variant(v.name)
        lines.append(
            f"| {v.name} | `{policy.policy.spec}` | {policy.weight:.0%} | {v.n} | {_fmt(v.success_rate, 3)} "
            f"[{_fmt(v.success_low, 3)}, {_fmt(v.success_high, 3)}] | {_fmt(v.mean_reward)} | {_fmt(v.mean_cost)} | "
            f"{_fmt(v.p95_ms)} | {_fmt(v.error_rate, 3)} | {_fmt(v.p_best, 3)} |"
        )
    lines += ["", "| treatment | metric | difference | always-valid 95% bound | p (always valid) | fixed-horizon p | verdict |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in analysis.comparisons:
        for bound in ([c.primary] if c.primary else []) + c.guardrails:
            flag = " (regressed)" if bound.regressed else ""
            fixed = _fmt(c.fixed_horizon_pvalue, 3) if bound is c.primary else "-"
            lines.append(f"| {c.treatment} | {bound.metric}{flag} | {bound.estimate:+.4g} | [{bound.low:.4g}, {bound.high:.4g}] "
                         f"| {_fmt(bound.pvalue, 3)} | {fixed} | {c.verdict.value} |")  # fmt: skip
    lines += ["", f"Sample-ratio check: p = {analysis.srm_pvalue:.3g}" + (" (MISMATCH: no verdict)" if analysis.srm else ""),
              "Bounds are confidence sequences (mSPRT): valid at every peek, so this may be read every 15 minutes."]  # fmt: skip
    return "\n".join(lines)


@flow(name="analyze-experiments", persist_result=False, flow_run_name="analyze-experiments (rollback={rollback})")
def analyze_experiments(store: str | None = None, rollback: bool = True) -> list[dict[str, Any]]:
    """Analyse every running experiment; emit `concluded` or `regressed`; roll back if `rollback`."""
    logger = get_run_logger()
    block = store_block(store)
    try:
        block.ingest(seal=False)
    except StoreError as exc:
        logger.warning("analysing without the newest spooled outcomes: %s", exc)
    sync_assignments(block)
    reports = []
    for experiment in list_experiments(block, Status.RUNNING):
        experiment, analysis = analyze_one(block, experiment, rollback=rollback)
        result = report(experiment, analysis)
        create_markdown_artifact(markdown(experiment, analysis), key=_artifact_key(experiment.name),
                                 description=f"Experiment {experiment.name}: {analysis.decision.value}")  # fmt: skip
        resource = {"prefect.resource.id": f"adaptive-router.experiment.{experiment.name}",
                    "prefect.resource.name": experiment.name}  # fmt: skip
        payload = {"experiment": experiment.name, "decision": analysis.decision.value, "reason": analysis.reason,
                   "pvalue": analysis.pvalue, "winner": analysis.winner}  # fmt: skip
        if analysis.decision is Verdict.ROLLBACK:
            emit_event(event=EVENTS["regressed"], resource=resource, payload=payload)
            logger.warning("experiment %s regressed: %s", experiment.name, analysis.reason)
        elif analysis.decision in _FINAL:
            emit_event(event=EVENTS["concluded"], resource=resource, payload=payload)
            logger.info("experiment %s concluded: %s", experiment.name, analysis.reason)
        else:
            logger.info("experiment %s continues: %s", experiment.name, analysis.reason)
        reports.append(result)
    return reports


def _artifact_key(name: str) -> str:
    return "experiment-" + "".join(c if c.isalnum() else "-" for c in name.lower())


@flow(name="rollback-experiment", persist_result=False, flow_run_name="rollback-experiment {experiment}")
def rollback_experiment(experiment: str, store: str | None = None) -> str:
    """Send a regressed experiment's traffic back to control and restore the policies it started from."""
    block = store_block(store)
    current = load_experiment(block, experiment)
    if current.status is not Status.RUNNING:
        message = f"experiment {experiment} is {current.status.value}; nothing to roll back"
    else:
        done = finish_experiment(block, experiment, Status.ROLLED_BACK, Verdict.ROLLBACK.value)
        message = f"experiment {experiment} rolled back; policies restored from snapshot {done.snapshot_id}"
    get_run_logger().info(message)
    return message
