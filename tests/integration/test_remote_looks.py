"""Looks at a published URL run off the call path, and the live policies travel through that URL.

A URL whose server accepts connections and never answers (until the test lets it) must not hold a
routed call: decisions come from what was fetched already, and the new state is adopted once the server
answers. The live policies file is shipped to moto's S3 server on loopback and adopted by a router on
'another machine'."""

from __future__ import annotations

import multiprocessing as mp
import re
from datetime import UTC, datetime

import pytest
from remote_support import HeldConnections, outcomes, remote_router

from blocks.store import DuckDBStore
from blocks.store.remote_state import RemotePublishedReader, ship_published
from routing.models import Task
from routing.published import PublishedState

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def published_stats(store: DuckDBStore, names: list[str], task_type: str = "qa") -> None:
    """Outcomes in `store`, recalculated and published beside it (as recalculate-stats does)."""
    from blocks.store.snapshots import publish
    from blocks.store.stats import recalculate
    from blocks.store.store import utc_naive

    for record in outcomes(names, task_type):
        store.record_execution(record)
    store.ingest()
    with store.connect() as con:
        recalculate(con, utc_naive(), full=True)
    publish(store, reason="test")


@pytest.fixture
def held(s3):
    proxy = HeldConnections(s3["AWS_ENDPOINT_URL"])
    yield proxy
    proxy.close()


def test_a_routed_call_never_waits_for_a_hanging_published_url(s3, held, tmp_path, store) -> None:
    from blocks.store.snapshots import load_published, published_path

    url = "s3://spool/held-state"
    runtime, strategy, names = remote_router(tmp_path, url)
    runtime.published.close()
    runtime.published = RemotePublishedReader(url, interval=600, storage_options=held.storage_options())
    try:
        published_stats(store, names)
        ship_published(published_path(store), url)  # straight to S3: the state is there to be read
        runtime.refresh()  # starts the look, through the server that holds it
        assert held.accepted.wait(timeout=60)  # the look is pending: its connection is held, unanswered
        runtime.refresh()
        decision = runtime.choose(Task(task_type="qa", payload="?"))
        assert decision.pick in names and not held.answered.is_set()  # decided before any answer
        assert strategy.snapshot is None  # routing on what it had: nothing yet

        held.release.set()  # the server answers from now on
        assert runtime.published.look_now(timeout=120)
        runtime.refresh()
        assert held.answered.is_set() and strategy.snapshot == load_published(published_path(store)).snapshot
        assert runtime.choose(Task(task_type="qa", payload="?")).pick == names[1]
    finally:
        runtime.close()


def test_breaker_gossip_never_holds_a_routed_call_on_a_hanging_url(s3, held) -> None:
    import boto3

    from blocks.store.gossip import BreakerGossip
    from routing.calls.breaker import BreakerBoard, BreakerConfig
    from routing.models import AttemptResult, ErrorType

    gossips: list[BreakerGossip] = []
    finder = BreakerBoard(BreakerConfig(failure_threshold=2), on_transition=lambda _t: gossips[0].publish())
    gossips.append(BreakerGossip("s3://spool/held-gossip", finder, interval=600,
                                 storage_options=held.storage_options(), name="host-a-1.json"))  # fmt: skip
    try:
        gossips[0].watch()
        assert held.accepted.wait(timeout=60)  # the first look is held
        for _ in range(2):  # the breaker opens inside these calls: its write is only asked for
            finder.record(AttemptResult(target="dead", ok=False, duration_ms=1.0, error_type=ErrorType.CONNECTION))
        gossips[0].watch()
        assert not finder.available("dead") and not held.answered.is_set()
        held.release.set()
        assert gossips[0].lookout.look_now(timeout=120)  # the write was done by then
        body = boto3.client("s3").get_object(Bucket="spool", Key="held-gossip/host-a-1.json")["Body"].read()
        assert "dead" in body.decode()
    finally:
        gossips[0].close()


def adopt_in_child(reader: RemotePublishedReader, expected: str) -> None:
    """In a forked child: the parent's looking thread is gone; a look starts one of its own."""
    assert reader.look_now(timeout=120)
    state = reader.changed()
    raise SystemExit(0 if state is not None and state.capabilities == {"a": {"math": float(expected)}} else 3)


def test_a_forked_child_looks_with_its_own_thread(s3, tmp_path) -> None:
    url = "s3://spool/forked"
    local = tmp_path / "state.json"
    local.write_text(PublishedState(created_at=datetime(2026, 12, 1, tzinfo=UTC),
                                    capabilities={"a": {"math": 80.0}}).model_dump_json())  # fmt: skip
    ship_published(local, url)
    reader = RemotePublishedReader(url, interval=600)
    try:
        assert reader.look_now(timeout=60) and reader.changed().capabilities == {"a": {"math": 80.0}}
        local.write_text(PublishedState(created_at=datetime(2026, 12, 2, tzinfo=UTC),
                                        capabilities={"a": {"math": 40.0}}).model_dump_json())  # fmt: skip
        ship_published(local, url)
        child = mp.get_context("fork").Process(target=adopt_in_child, args=(reader, "40"))
        child.start()
        child.join(timeout=180)
        assert child.exitcode == 0
        assert reader.changed() is None  # the parent has not looked since
        assert reader.look_now(timeout=60) and reader.changed().capabilities == {"a": {"math": 40.0}}
    finally:
        reader.close()


def test_a_fresh_router_adopts_what_is_shipped_on_its_first_refresh(s3, tmp_path, store, monkeypatch) -> None:
    from blocks.fleet.config import STABLE_FLEET_PATH, load_fleet_config
    from blocks.fleet.targets import fleet_targets
    from blocks.store.experiments import apply_policy
    from blocks.store.snapshots import load_published, published_path
    from routing.experiments.policy import parse_policy

    url = "s3://spool/first-refresh"
    here = DuckDBStore(database=str(store.path), published_url=url)
    names = [t.target_name for t in fleet_targets(load_fleet_config(STABLE_FLEET_PATH), "http://127.0.0.1:9")[:2]]
    published_stats(store, names)
    ship_published(published_path(store), url)
    apply_policy(here, parse_policy(f"fixed:{names[0]}"), "pin the first", approved=True)  # ships live.json

    monkeypatch.setattr("blocks.store.remote_state.FIRST_LOOK_TIMEOUT", 120.0)  # a slow machine is no failure
    runtime, strategy, built_names = remote_router(tmp_path, url)  # a new process: built, refreshed once
    try:
        assert built_names == names
        assert strategy.snapshot == load_published(published_path(store)).snapshot
        assert runtime.router.strategy.name == "fixed"
        assert runtime.choose(Task(task_type="qa", payload="?")).pick == names[0]
    finally:
        runtime.close()


# -- the live policies on the published URL -------------------------------------------------------------


def test_live_policies_shipped_to_s3_are_adopted_by_a_router_elsewhere(s3, tmp_path, store) -> None:
    from blocks.store.experiments import apply_policy, finish_experiment, start_experiment
    from routing.experiments.assignment import Status, new_experiment
    from routing.experiments.policy import parse_policy

    url = "s3://spool/live"
    here = DuckDBStore(database=str(store.path), published_url=url)  # the store's machine
    runtime, _, names = remote_router(tmp_path, url)  # its own store; the live policies only at the URL
    try:
        assert runtime.live.look_now(timeout=60) and runtime.policies is None  # nothing shipped yet
        apply_policy(here, parse_policy(f"fixed:{names[0]}"), "pin the first", approved=True)
        assert runtime.live.look_now(timeout=60)
        runtime.refresh()
        assert runtime.router.strategy.name == "fixed"
        assert runtime.choose(Task(task_type="qa", payload="?")).pick == names[0]

        experiment = new_experiment("pin-second", parse_policy(f"fixed:{names[0]}"),
                                    [parse_policy(f"fixed:{names[1]}")], traffic=0.5)  # fmt: skip
        start_experiment(here, experiment)
        assert runtime.live.look_now(timeout=60)
        runtime.refresh()
        assert [e.name for e in runtime.policies.experiments] == ["pin-second"]
        picks = {runtime.choose(Task(task_type="qa", payload=str(i))).pick for i in range(40)}
        assert picks == set(names)  # control pins the first, the treatment the second

        finish_experiment(here, "pin-second", Status.STOPPED, None)
        assert runtime.live.look_now(timeout=60)
        runtime.refresh()
        assert runtime.policies.experiments == []
    finally:
        runtime.close()


def test_a_live_policies_copy_that_differs_is_shipped_again_by_recalculate_stats(
    s3, prefect_harness, tmp_path, store, monkeypatch
) -> None:
    import boto3

    from blocks.store.experiments import apply_policy, live_path
    from flows.recalculate import recalculate_stats
    from routing.experiments.policy import parse_policy

    url = "s3://spool/live-repair"
    monkeypatch.setenv("ADAPTIVE_ROUTER_DB", str(store.path))
    monkeypatch.setenv("ADAPTIVE_ROUTER_PUBLISHED_URL", url)
    apply_policy(store, parse_policy("thompson"), "first", approved=True)
    assert recalculate_stats().shipped_live is None  # shipped by the change itself: the copies match
    s3_client = boto3.client("s3")
    s3_client.put_object(Bucket="spool", Key="live-repair/live.json", Body=b'{"policies": {}}')  # a stale copy
    assert recalculate_stats().shipped_live == f"{url}/live.json"
    shipped = s3_client.get_object(Bucket="spool", Key="live-repair/live.json")["Body"].read()
    assert shipped == live_path(store).read_bytes()


def test_a_policy_change_that_cannot_be_shipped_is_committed_and_says_so(tmp_path, caplog, monkeypatch) -> None:
    from typer.testing import CliRunner

    from blocks.store.experiments import apply_policy, load_policy_state
    from flows.cli import app
    from routing.experiments.policy import parse_policy

    (tmp_path / "a-file").write_text("not a directory")
    url = f"file://{tmp_path}/a-file/published"
    store = DuckDBStore(database=str(tmp_path / "router.duckdb"), published_url=url)
    apply_policy(store, parse_policy("thompson"), "first", approved=True)  # no error: the change is committed
    assert load_policy_state(store).policies["*"].spec == "thompson"
    assert re.search(r"policy change is recorded.*a-file/published/live\.json failed.*recalculate-stats", caplog.text)

    monkeypatch.setenv("ADAPTIVE_ROUTER_PUBLISHED_URL", url)
    result = CliRunner().invoke(app, ["policy", "apply", "epsilon_greedy", "--approve", "-d", str(store.path)])
    assert result.exit_code == 0, result.output
    assert "warning: the policy change is recorded" in " ".join(result.output.split())
    assert load_policy_state(store).policies["*"].spec == "epsilon_greedy"

    monkeypatch.setenv("ADAPTIVE_ROUTER_PUBLISHED_URL", "/not/a/url")  # malformed: found after the commit
    result = CliRunner().invoke(app, ["policy", "apply", "ucb1", "--approve", "-d", str(store.path)])
    assert result.exit_code == 0, result.output
    assert "ADAPTIVE_ROUTER_PUBLISHED_URL must be an fsspec URL" in " ".join(result.output.split())
    assert load_policy_state(store).policies["*"].spec == "ucb1"
