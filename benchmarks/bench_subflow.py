"""Overhead of the routing subflow over a bare adapter call, on the ephemeral API and a local server.

Each row is the median wall time of one routed call to a fleet model (~5 ms of simulated latency):
  bare adapter     `target.execute(task)`, no Prefect at all (the baseline)
  call-target task one task run inside an open flow run (what route-batch pays per call)
  routed-call      the routing subflow, as `route()` runs it (heartbeats off)
  routed-call +hb  the same subflow with Prefect's default heartbeat (the cost we avoid)
  route()          the public entry point: choose, then the routed-call subflow (what users call)
  bare subflow     a subflow that only calls the adapter, heartbeats off: the Prefect floor
  litellm mock     LiteLLM's `completion(..., mock_response=...)`, no network: a peer's own overhead,
                   from a separate venv (pinned litellm, put on sys.path after ours: LITELLM_SITE=...)

    python benchmarks/bench_subflow.py [--quick] [--no-server]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from common import median, report

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def child(calls: int) -> None:
    """Runs in a subprocess so each API mode gets a clean Prefect process."""
    from prefect import flow
    from prefect.utilities.asyncutils import run_coro_as_sync

    from blocks.fleet.config import STABLE_FLEET_PATH, load_fleet_config
    from blocks.fleet.launcher import FleetServer
    from blocks.fleet.targets import fleet_targets
    from blocks.store import DuckDBStore
    from flows.route import fast_subflows, route, routed_call
    from flows.runtime import RoutingRuntime, register_runtime
    from routing import Task
    from tasks.calls import call_target

    config = load_fleet_config(STABLE_FLEET_PATH)
    with FleetServer(config) as fleet, tempfile.TemporaryDirectory() as scratch:
        target = fleet_targets(config, fleet.base_url)[0]
        register_runtime("bench", RoutingRuntime.build([target], DuckDBStore(database=f"{scratch}/b.duckdb")))
        task = Task(task_type="greeting", payload="Say hello.")

        def timed(fn) -> list[float]:
            fn()  # warm-up
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - start) * 1000)
            return samples

        @flow(name="bare-subflow")
        def bare_subflow() -> object:
            return run_coro_as_sync(target.execute(task))

        @flow(name="bench-parent")
        def parent() -> dict[str, list[float]]:
            with fast_subflows():
                fast = timed(lambda: routed_call(task, "bench"))
                floor = timed(bare_subflow)
            return {
                "call-target task": timed(lambda: call_target(target, task)),
                "routed-call": fast,
                "route()": timed(lambda: route(task, "bench")),
                "bare subflow": floor,
                "routed-call +hb": timed(lambda: routed_call(task, "bench")),
            }

        bare = timed(lambda: run_coro_as_sync(target.execute(task)))
        results = {"bare adapter": bare, **parent(), **litellm_mock(timed)}
    print("RESULT " + json.dumps(results))


def litellm_mock(timed) -> dict[str, list[float]]:
    """LiteLLM's mock completion in this process, if LITELLM_SITE names a site-packages holding it."""
    site = os.environ.get("LITELLM_SITE")
    if not site:
        return {}
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    sys.path.append(site)  # after ours: shared dependencies resolve to this venv's versions
    try:
        import litellm
    except ImportError as exc:
        print(f"litellm not importable from {site}: {exc}", file=sys.stderr)
        return {}
    messages = [{"role": "user", "content": "Say hello."}]
    return {"litellm mock": timed(lambda: litellm.completion(model="gpt-4o-mini", messages=messages,
                                                              mock_response="Hello."))}


def run_child(calls: int, env: dict[str, str]) -> dict[str, list[float]]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(calls)], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_server(home: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("local Prefect server did not become healthy within 120 s")


def main(quick: bool, with_server: bool) -> None:
    calls = 10 if quick else 40
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": ""}
        results = {"ephemeral": run_child(calls, env)}
        if with_server:
            server, url = local_server(home)
            try:
                results["local server"] = run_child(calls, {**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": url})
            finally:
                os.killpg(server.pid, 15)
                server.wait()
    rows = []
    for api, by_mode in results.items():
        base = median(by_mode["bare adapter"])
        for mode, samples in by_mode.items():
            rows.append({
                "api": api,
                "mode": mode,
                "median_ms": median(samples),
                "overhead_ms": median(samples) - base,
                "ratio_to_bare": median(samples) / base,
            })
    report("subflow", "Routing subflow overhead over a bare adapter call", rows, f"{calls} calls per row")


if __name__ == "__main__":
    if "--child" in sys.argv:
        child(int(sys.argv[sys.argv.index("--child") + 1]))
    else:
        main("--quick" in sys.argv, "--no-server" not in sys.argv)
