"""Gateway overhead: the same fleet model called directly, through the gateway, and through LiteLLM's proxy.

Every system runs in its own process on loopback, and the client sends the same chat completion to each:
  direct            the fleet's `small` model (~5 ms of simulated latency), no proxy
  gateway (task)    `adaptive-router gateway` over a runtime of that one model, model=router: choose,
                    budgets, a call-target task run in the gateway's flow run, spooled records
  gateway (subflow) the same with --subflow-per-request (full runs only)
  litellm -> fleet  LiteLLM's proxy forwarding to the same fleet model
  litellm mock      LiteLLM's proxy answering with `mock_response` (no upstream: its bare overhead)
Overhead (+p50, +p99) = a system's median (p99) minus direct's, sequentially and with 16 concurrent
clients; for the mock, which has no upstream, its whole latency.

LiteLLM runs from its own virtualenv, pinned (1.107.0 was a compromised release), never this project's:
    python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install litellm==1.110.2 \
        fastapi uvicorn orjson apscheduler backoff pyyaml cryptography python-multipart websockets PyJWT \
        gunicorn email-validator redis rq hiredis fastapi-sso pynacl tomlkit semver backports-zstd \
        restrictedpython expression litellm-proxy-extras litellm-enterprise 'rich<14' inquirerpy soundfile polars

    python benchmarks/bench_gateway.py [--quick] [--litellm /tmp/litellm-venv/bin/litellm]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import median, p99, report

REPO = Path(__file__).resolve().parents[1]
FLEET = REPO / "blocks" / "fleet" / "stable.toml"
MODEL = "small"
BODY = {"messages": [{"role": "user", "content": "Say hello in one short sentence."}], "max_tokens": 64}
MASTER_KEY = "sk-bench-local-only-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_gateway(fleet_url: str, port: int, database: str, subflow: bool) -> None:
    """Child process: the gateway flow over a runtime of the fleet's `small` model alone."""
    from blocks.fleet.config import load_fleet_config
    from blocks.fleet.targets import fleet_targets
    from blocks.store import DuckDBStore
    from flows.gateway.serve import gateway
    from flows.runtime import RoutingRuntime, register_runtime

    targets = [t for t in fleet_targets(load_fleet_config(FLEET), fleet_url) if t.target_name == MODEL]
    register_runtime("bench", RoutingRuntime.build(targets, DuckDBStore(database=database)))
    gateway("127.0.0.1", port, "bench", subflow)


def wait_until(url: str, process: subprocess.Popen, timeout: float, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode} before answering at {url}")
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"nothing answered at {url} within {timeout:g} s")


def start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    environment.pop("PREFECT_API_URL", None)  # each gateway gets its own ephemeral API ("" breaks its events)
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                env=environment, start_new_session=True)  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process (a gateway then ends its flow run Completed), then whatever it left in its group."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)
    process.wait()


def measure(url: str, model: str, sequential: int, clients: int, per_client: int, headers: dict | None = None) -> dict[str, list[float]]:
    """Latency in ms of `sequential` requests one at a time, then of `clients` threads sending `per_client` each."""
    body = {**BODY, "model": model}

    def one(client: httpx.Client) -> float:
        started = time.perf_counter()
        response = client.post(url, json=body)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} model={model}: HTTP {response.status_code}: {response.text[:300]}")
        return elapsed

    with httpx.Client(timeout=60, headers=headers) as client:
        for _ in range(10):
            one(client)  # warm-up: connections, imports, first task runs
        alone = [one(client) for _ in range(sequential)]
    together: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=60, headers=headers) as client:
            samples = [one(client) for _ in range(per_client)]
        with lock:
            together.extend(samples)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sequential": alone, "concurrent": together}


def litellm_config(path: Path, fleet_url: str) -> Path:
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n      api_base: {fleet_url}\n      api_key: unused\n"
        "  - model_name: mock\n    litellm_params:\n      model: openai/mock\n      mock_response: Hello! Nice to meet you.\n"
        "litellm_settings:\n  telemetry: false\n"
    )  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer requests; no subflow mode.")
    parser.add_argument("--litellm", default="/tmp/litellm-venv/bin/litellm", help="LiteLLM's `litellm` executable (its own venv).")
    parser.add_argument("--serve-gateway", nargs=4, metavar=("FLEET_URL", "PORT", "DATABASE", "SUBFLOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway:
        fleet_url, port, database, subflow = args.serve_gateway
        serve_gateway(fleet_url, int(port), database, subflow == "1")
        return
    sequential, clients, per_client = (60, 16, 5) if args.quick else (300, 16, 25)
    scratch = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    processes: list[subprocess.Popen] = []
    results: dict[str, dict[str, list[float]]] = {}
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(scratch / "prefect"),
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}  # fmt: skip
    try:
        fleet_port = free_port()
        fleet = start([sys.executable, "-m", "flows.cli", "fleet", "serve", "--config", str(FLEET), "--port", str(fleet_port)], scratch / "fleet.log")
        processes.append(fleet)
        fleet_url = f"http://127.0.0.1:{fleet_port}/v1"
        wait_until(f"{fleet_url}/models", fleet, 60)
        results["direct"] = measure(f"{fleet_url}/chat/completions", MODEL, sequential, clients, per_client)

        modes = [("gateway (task)", "0")] + ([] if args.quick else [("gateway (subflow)", "1")])
        for name, subflow in modes:
            port = free_port()
            child = [sys.executable, __file__, "--serve-gateway", fleet_url, str(port), str(scratch / f"gw{subflow}.duckdb"), subflow]
            gateway = start(child, scratch / f"gateway{subflow}.log", env)
            processes.append(gateway)
            wait_until(f"http://127.0.0.1:{port}/health", gateway, 300)
            n = (sequential, clients, per_client) if subflow == "0" else (30, 4, 5)
            results[name] = measure(f"http://127.0.0.1:{port}/v1/chat/completions", "router", *n)
            stop(gateway)

        if Path(args.litellm).exists():
            port = free_port()
            config = litellm_config(scratch / "litellm.yaml", fleet_url)
            proxy = start([args.litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                          scratch / "litellm.log", {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOG": "ERROR"})  # fmt: skip
            processes.append(proxy)
            auth = {"Authorization": f"Bearer {MASTER_KEY}"}
            wait_until(f"http://127.0.0.1:{port}/health/liveliness", proxy, 180)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            results["litellm -> fleet"] = measure(url, MODEL, sequential, clients, per_client, auth)
            results["litellm mock"] = measure(url, "mock", sequential, clients, per_client, auth)
            version = subprocess.run([str(Path(args.litellm).with_name("pip")), "show", "litellm"], check=False, capture_output=True, text=True).stdout
            litellm_version = next((line.split()[-1] for line in version.splitlines() if line.startswith("Version")), "?")
        else:
            litellm_version = None
            print(f"LiteLLM not found at {args.litellm}: its rows are left out (see this file's docstring to install it)")
    finally:
        for process in reversed(processes):
            stop(process)

    rows = []
    for name, modes in results.items():
        for mode, samples in modes.items():
            base = results["direct"][mode]
            bare = name == "litellm mock"  # no upstream: its whole latency is overhead
            rows.append({
                "system": name, "mode": "sequential" if mode == "sequential" else f"{clients} clients", "n": len(samples),
                "p50 ms": median(samples), "p99 ms": p99(samples), "mean ms": statistics.fmean(samples),
                "+p50 ms": median(samples) - (0.0 if bare else median(base)),
                "+p99 ms": p99(samples) - (0.0 if bare else p99(base)),
            })  # fmt: skip
    notes = (f"fleet model {MODEL} (stable.toml); LiteLLM {litellm_version or 'not run'}; ephemeral Prefect API in the gateway's process tree; "
             f"{os.cpu_count()} cores shared with the client and every server")  # fmt: skip
    report("bench_gateway", "Gateway overhead over a direct call to the same fleet model", rows, notes)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
