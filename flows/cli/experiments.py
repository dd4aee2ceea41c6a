"""`adaptive-router ab-test ...` and `adaptive-router policy ...`: experiments and the policy engine.

Two typer sub-apps, mounted on the main CLI by flows/cli/__init__.py. Every command works on the local store
(`--database`, else $ADAPTIVE_ROUTER_DB or .adaptive-router/router.duckdb); changes are published to
routers at once (published/live.json), so `ab-test start` then `demo` runs the experiment.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flows.cli.common import DatabaseOption, console, existing_store, fail, open_store, show_warnings
from routing.errors import RoutingError

if TYPE_CHECKING:
    from blocks.store import Store
ab_test_app = typer.Typer(help="A/B tests of routing policies, analysed with always-valid statistics.", no_args_is_help=True)
policy_app = typer.Typer(help="The routing policy in force: list, show, history, apply, rollback.", no_args_is_help=True)

ab_test_app.callback()(show_warnings)  # a change committed but not shipped to the published URL is said
policy_app.callback()(show_warnings)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _ingested(store: Store) -> Store:
    """The store with the spooled decisions and outcomes ingested and assignments copied."""
    from blocks.store.experiments import sync_assignments

    store.ingest(seal=False)
    sync_assignments(store)
    return store


def _ope(store: Store, control, treatments, metric: str, wtp: float):
    """The off-policy gate on the store's logged decisions, or None when nothing is logged yet."""
    from blocks.store.experiments import logged_decisions
    from routing.experiments.ope import gate
    from routing.models import Target

    rows = logged_decisions(store)
    if not rows:
        return None
    names = sorted({str(r["pick"]) for r in rows} | {n for p in [control, *treatments] for n in p.order})
    return gate(control, treatments, [Target(name=n) for n in names], rows, metric, wtp)


@ab_test_app.command("start")
def start(
    name: Annotated[str, typer.Argument(help="A name for the experiment.")],
    control: Annotated[str, typer.Option(help="Control policy spec, e.g. thompson.")],
    treatment: Annotated[list[str], typer.Option(help="Treatment policy spec (repeat for several).")],
    traffic: Annotated[float, typer.Option(help="Share of traffic the treatments get, split equally.", min=0.0, max=1.0)] = 0.5,
    min_samples: Annotated[int, typer.Option(help="Tasks per variant before the primary metric decides.", min=2)] = 100,
    metric: Annotated[str, typer.Option(help="Primary metric: success or reward (L x success - cost).")] = "success",
    willingness_to_pay: Annotated[float, typer.Option(help="L in the reward, dollars per success.")] = 0.01,
    require_ope: Annotated[bool, typer.Option("--require-ope", help="Refuse a treatment whose off-policy lower bound is below control's.")] = False,
    database: DatabaseOption = None,
) -> None:
    """Start routing a share of traffic by the treatment policies."""
    from blocks.store.experiments import start_experiment
    from routing.experiments.assignment import ExperimentConfig, new_experiment
    from routing.experiments.policy import parse_policy

    try:
        if metric not in ("success", "reward"):
            raise RoutingError(f"--metric must be success or reward, got {metric!r}")
        config = ExperimentConfig(metric=metric, min_samples=min_samples, willingness_to_pay=willingness_to_pay)
        experiment = new_experiment(name, parse_policy(control), [parse_policy(t) for t in treatment], traffic, config)
        store = _ingested(open_store(database))
        verdict = _ope(store, experiment.control.policy, [v.policy for v in experiment.variants[1:]], metric, willingness_to_pay)
        if verdict is None:
            message = "off-policy gate: no logged decisions to evaluate on"
            if require_ope:
                raise RoutingError(message + "; route some traffic first or drop --require-ope")
            console.print(message)
        else:
            for result in [verdict.control, *verdict.treatments]:
                for estimate in (result.snips, result.doubly_robust):
                    console.print(f"off-policy {result.policy:>28} {estimate.estimator:>13}: {estimate.value:.4f} "
                                  f"[{estimate.ci_low:.4f}, {estimate.ci_high:.4f}] (n={estimate.n})")  # fmt: skip
            if require_ope and not verdict.passed:
                raise RoutingError(f"--require-ope: {verdict.reason}")
        experiment = start_experiment(store, experiment)
    except (RoutingError, ValueError) as exc:
        fail(exc)
    shares = ", ".join(f"{v.name} {v.policy.spec} {v.weight:.0%}" for v in experiment.variants)
    console.print(f"experiment {name} running: {shares}; policy snapshot {experiment.snapshot_id}")


def _analysis(name: str, database: str | None, act: bool) -> dict:
    from blocks.store.experiments import load_experiment
    from flows.experiments import analyze_one, report

    store = _ingested(existing_store(database))
    experiment, analysis = analyze_one(store, load_experiment(store, name), act=act)
    return report(experiment, analysis)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _print_report(result: dict) -> None:
    table = Table(title=f"{result['name']} ({result['status']}): {result['decision']}")
    for column in ("variant", "policy", "n", "success", "mean cost", "p95 ms", "errors", "P(best)"):
        table.add_column(column)
    fmt = _figure
    for name, v in result["variants"].items():
        table.add_row(name, v["policy"], str(v["n"]), fmt(v["success_rate"]), fmt(v["mean_cost"]), fmt(v["p95_ms"]),
                      fmt(v["error_rate"]), fmt(v["p_best"]))  # fmt: skip
    console.print(table)
    console.print(result["reason"])
    console.print(f"always-valid p = {result['pvalue']}, sample-ratio p = {result['srm_pvalue']:.3g}")


def _show(name: str, database: str | None, as_json: bool, act: bool) -> None:
    try:
        result = _analysis(name, database, act)
    except RoutingError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(result, default=str))
    else:
        _print_report(result)


@ab_test_app.command("status")
def status(name: str, as_json: JsonOption = False, database: DatabaseOption = None) -> None:
    """Where the experiment stands, without acting on it."""
    _show(name, database, as_json, act=False)


@ab_test_app.command("analyze")
def analyze(name: str, as_json: JsonOption = False, database: DatabaseOption = None) -> None:
    """Analyse now and act: a verdict stops the experiment; a regression rolls it back."""
    _show(name, database, as_json, act=True)


@ab_test_app.command("stop")
def stop(name: str, database: DatabaseOption = None) -> None:
    """Stop routing by the experiment (the policies in force stay as they are)."""
    from blocks.store.experiments import finish_experiment
    from routing.experiments.assignment import Status

    try:
        experiment = finish_experiment(existing_store(database), name, Status.STOPPED, None)
    except RoutingError as exc:
        fail(exc)
    console.print(f"experiment {experiment.name} stopped")


@ab_test_app.command("list")
def list_(database: DatabaseOption = None) -> None:
    """Every experiment, newest last."""
    from blocks.store.experiments import list_experiments

    table = Table(title="experiments")
    for column in ("name", "status", "decision", "metric", "variants", "started"):
        table.add_column(column)
    for e in list_experiments(existing_store(database)):
        variants = ", ".join(f"{v.name}={v.policy.spec} ({v.weight:.0%})" for v in e.variants)
        table.add_row(e.name, e.status.value, e.decision or "-", e.config.metric, variants, f"{e.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@policy_app.command("list")
def policy_list(database: DatabaseOption = None) -> None:
    """The policy in force per scope, and recent snapshots to roll back to."""
    from blocks.store.experiments import list_snapshots, load_policy_state

    store = existing_store(database)
    state = load_policy_state(store)
    if not state.policies:
        console.print("no policy applied: routers use their configured strategy")
    for scope, policy in sorted(state.policies.items()):
        console.print(f"{scope}: {policy.spec}")
    for snap in list_snapshots(store, 10):
        console.print(f"snapshot {snap['snapshot_id']}  {snap['created_at']:%Y-%m-%d %H:%M:%S}  {snap['note']}")


@policy_app.command("show")
def policy_show(scope: Annotated[str, typer.Argument(help="'*' (every task type) or a task type.")] = "*",
                database: DatabaseOption = None) -> None:  # fmt: skip
    """One scope's policy as JSON."""
    from blocks.store.experiments import load_policy_state

    policy = load_policy_state(existing_store(database)).policy_for(scope)
    typer.echo(json.dumps(policy.model_dump(mode="json") if policy else None, indent=1))


@policy_app.command("history")
def policy_history(limit: Annotated[int, typer.Option(min=1)] = 20, database: DatabaseOption = None) -> None:
    """The audit trail: who changed what, from what, why, and the snapshot taken before."""
    from blocks.store.experiments import policy_history as history

    for c in history(existing_store(database), limit):
        confidence = "" if c.confidence is None else f" (confidence {c.confidence:.2f})"
        console.print(f"{c.timestamp:%Y-%m-%d %H:%M:%S} {c.scope}: {c.old.spec if c.old else '(default)'} -> "
                      f"{c.new.spec if c.new else '(default)'} by {c.applied_by}: {c.reason}{confidence}; "
                      f"snapshot before: {c.snapshot_id or '-'}")  # fmt: skip


@policy_app.command("apply")
def policy_apply(
    spec: Annotated[str, typer.Argument(help="Policy spec, e.g. thompson:discount=0.99 or fixed:small,mid.")],
    task_type: Annotated[str | None, typer.Option(help="Only for this task type.")] = None,
    reason: Annotated[str, typer.Option(help="Why; kept in the audit trail.")] = "applied by hand",
    approve: Annotated[bool, typer.Option("--approve", help="Approve a large change (another strategy, an option moved > 50%).")] = False,
    database: DatabaseOption = None,
) -> None:
    """Validate and apply a policy (snapshot first); routers pick it up at once."""
    from blocks.store.experiments import apply_policy
    from routing.experiments.policy import parse_policy

    try:
        policy = parse_policy(spec, task_type)
        policy.build(["probe"] if not policy.order else list(policy.order))  # options fail here, naming themselves
        change = apply_policy(open_store(database), policy, reason, scope=task_type or "*", approved=approve)
    except RoutingError as exc:
        fail(exc)
    console.print(f"{change.scope}: {change.old.spec if change.old else '(default)'} -> {policy.spec}; "
                  f"snapshot before it: {change.snapshot_id}")  # fmt: skip


@policy_app.command("propose")
def policy_propose(
    apply: Annotated[bool, typer.Option("--apply", help="Apply each proposal that passes validation.")] = False,
    approve: Annotated[bool, typer.Option("--approve", help="Approve large changes among them.")] = False,
    database: DatabaseOption = None,
) -> None:
    """What the evidence in the store (drift in success, user acceptance) suggests changing."""
    from blocks.store.experiments import apply_policy, load_policy_state, outcome_aggregates
    from routing.experiments.engine import EngineConfig, propose

    store = existing_store(database)
    proposals = propose(load_policy_state(store), outcome_aggregates(store), EngineConfig())
    if not proposals:
        console.print("no adjustment proposed: no drift or rejection strong enough in the store's outcomes")
    for change in proposals:
        console.print(f"{change.scope}: {change.old.spec if change.old else '(default)'} -> {change.new.spec}: {change.reason}")
        if apply:
            try:
                apply_policy(store, change.new, change.reason, change.scope, "engine", approve, change.confidence)
                console.print("  applied")
            except RoutingError as exc:
                console.print(f"  not applied: {exc}")


@policy_app.command("rollback")
def policy_rollback(snapshot: Annotated[str, typer.Argument(help="Snapshot id (see `policy list` or `history`).")],
                    database: DatabaseOption = None) -> None:  # fmt: skip
    """Restore the policies of a snapshot."""
    from blocks.store.experiments import rollback_policies

    try:
        state = rollback_policies(existing_store(database), snapshot, f"rolled back to {snapshot} by hand", "cli")
    except RoutingError as exc:
        fail(exc)
    console.print("restored: " + (", ".join(f"{s}: {p.spec}" for s, p in state.policies.items()) or "no policy (configured strategy)"))
