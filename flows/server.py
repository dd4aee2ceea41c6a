"""`adaptive-router up` / `stop`: a local Prefect server and process worker running the scheduled flows.

`up` starts `prefect server start` on loopback in the background (its own session, so `stop` can end
it and everything it spawned as one process group), waits until the API answers, creates the process
work pool, registers the blocks, saves a working `default` runtime (store, targets and settings blocks:
the discovered providers, or the local fleet, which it then also starts, when no provider key is set),
deploys every flow of prefect.yaml (which also creates the automations its triggers define), starts a
worker and the OpenAI-compatible gateway over the `default` runtime, and says where the UI and the
gateway are. Logs go to `<home>/server.log`, `<home>/worker.log`, `<home>/fleet.log` and `<home>/gateway.log`, process ids to `<home>/*.pid`, the API address to `<home>/server.json` for later
commands. The server's database and profiles live under
`<home>/prefect` unless PREFECT_HOME is set, so `up` never touches another profile's server. Running
`up` again reuses a live server and worker and redeploys.

`stop` ends the processes named by the pid files, after checking each still runs the command it was
started as (a pid may have been reused since).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from routing.errors import ServerError

DEFAULT_HOME = Path(".adaptive-router")
DEFAULT_POOL = "adaptive-router"
SERVER_INFO = "server.json"
PREFECT = [sys.executable, "-m", "prefect"]


@dataclass(frozen=True)
class StackConfig:
    host: str = "127.0.0.1"
    port: int = 4200
    pool: str = DEFAULT_POOL
    home: Path = DEFAULT_HOME
    project: Path = field(default_factory=Path.cwd)
    schedules: bool = True
    worker: bool = True
    timeout_seconds: float = 120.0
    fleet_port: int = 8700
    gateway: bool = True
    gateway_port: int = 8800
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def fleet_url(self) -> str:
        return f"http://127.0.0.1:{self.fleet_port}/v1"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"


@dataclass(frozen=True)
class Stack:
    api_url: str
    ui_url: str
    server_pid: int
    worker_pid: int | None
    deployments: list[str]
    targets: list[str] = field(default_factory=list)
    fleet_pid: int | None = None
    gateway_pid: int | None = None
    gateway_url: str | None = None


def up(config: StackConfig, echo: Callable[[str], None] = print) -> Stack:
    """Start (or reuse) the server, then pool, blocks, deployments and worker; see the module docstring."""
    if not (config.project / "prefect.yaml").is_file():  # before anything starts: nothing to stop after
        raise ServerError(
            f"no prefect.yaml in {config.project.resolve()}: run `adaptive-router up` from the project's "
            "directory (the clone holding prefect.yaml); workers run the flows there"
        )
    home = config.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = _environment(config, home)
    server_pid = _running(home / "server.pid", "server")
    if server_pid is not None and _healthy(config.api_url):
        echo(f"reusing the Prefect server (pid {server_pid}) at {config.ui_url}")
    else:
        args = [*PREFECT, "server", "start", "--host", config.host, "--port", str(config.port)]
        if not config.schedules:
            args.append("--no-scheduler")
        server_pid = _spawn(args, home / "server", env, config.project)
        echo(f"starting the Prefect server (pid {server_pid}); log: {home / 'server.log'}")
        _wait_healthy(config.api_url, server_pid, home / "server.log", config.timeout_seconds)
    (home / SERVER_INFO).write_text(json.dumps({"api_url": config.api_url, "ui_url": config.ui_url}))
    _run(
        "create the work pool",
        [*PREFECT, "work-pool", "create", config.pool, "--type", "process", "--overwrite"],
        env,
        config.project,
    )
    _run("register the blocks", [*PREFECT, "block", "register", "-m", "blocks"], env, config.project)
    from blocks.targets.discovery import has_provider_keys  # imports Prefect: only `up` pays for it

    fleet_pid = None
    if not has_provider_keys(env):
        fleet_pid = _running(home / "fleet.pid", "fleet")
        if fleet_pid is None:
            args = [sys.executable, "-m", "flows.cli", "fleet", "serve", "--port", str(config.fleet_port)]
            fleet_pid = _spawn(args, home / "fleet", env, config.project)
            echo(f"no provider keys set: starting the local fleet (pid {fleet_pid}) at {config.fleet_url}")
    database = Path(env.get("ADAPTIVE_ROUTER_DB") or config.project / ".adaptive-router" / "router.duckdb")
    provisioned = _run(
        "save the default runtime",
        [sys.executable, "-m", "flows.provision", str(database), config.fleet_url],
        env,
        config.project,
    )
    targets = json.loads(provisioned.strip().splitlines()[-1])["targets"]
    echo(f"saved the 'default' runtime: store {database}, {len(targets)} targets")
    echo("deploying every flow of prefect.yaml")
    _run("deploy the flows", [*PREFECT, "--no-prompt", "deploy", "--all"], env, config.project, timeout=600)
    deployments = _deployments(config.api_url)
    worker_pid = None
    if config.worker:
        worker_pid = _running(home / "worker.pid", "worker")
        if worker_pid is None:
            args = [*PREFECT, "worker", "start", "--pool", config.pool, "--type", "process"]
            worker_pid = _spawn(args, home / "worker", env, config.project)
            echo(
                f"starting a process worker on pool {config.pool!r} (pid {worker_pid}); log: {home / 'worker.log'}"
            )
    gateway_pid = _start_gateway(config, home, env, echo) if config.gateway else None
    gateway_url = f"{config.gateway_url}/v1" if gateway_pid else None
    return Stack(config.api_url, config.ui_url, server_pid, worker_pid, deployments, targets, fleet_pid, gateway_pid, gateway_url)


def _start_gateway(config: StackConfig, home: Path, env: dict[str, str], echo: Callable[[str], None]) -> int:
    """The gateway over the saved `default` runtime, on loopback, as a background process (reused when up)."""
    pid = _running(home / "gateway.pid", "gateway")
    if pid is None:
        args = [sys.executable, "-m", "flows.cli", "gateway", "--port", str(config.gateway_port), "--runtime", "default"]
        pid = _spawn(args, home / "gateway", env, config.project)
    deadline = time.monotonic() + config.timeout_seconds
    while not _healthy(config.gateway_url):
        if _command_line(pid) is None:
            tail = "\n".join((home / "gateway.log").read_text(errors="replace").splitlines()[-15:])
            raise ServerError(f"the gateway exited before answering at {config.gateway_url}:\n{tail}")
        if time.monotonic() > deadline:
            raise ServerError(f"the gateway did not answer at {config.gateway_url} within {config.timeout_seconds:g} s")
        time.sleep(0.5)
    echo(f"gateway (pid {pid}) at {config.gateway_url}/v1 (OpenAI-compatible; metrics at {config.gateway_url}/metrics);"
         f" log: {home / 'gateway.log'}")  # fmt: skip
    return pid


def stop(home: Path = DEFAULT_HOME, timeout_seconds: float = 20.0) -> list[str]:
    """End the worker, then the server, that `up` started from `home`; returns what was done, in words."""
    home = home.resolve()
    if home.exists() and not home.is_dir():  # nothing `up` started can live in a file
        return [f"nothing to stop: {home} is a file, not the directory `adaptive-router up` keeps its state in"]
    done = []
    for name in ("gateway", "worker", "fleet", "server"):
        pid_file = home / f"{name}.pid"
        pid = _running(pid_file, name)
        if pid is None:
            done.append(f"no {name} running")
        else:
            _terminate(pid, timeout_seconds)
            done.append(f"stopped the {name} (pid {pid})")
        pid_file.unlink(missing_ok=True)
    (home / SERVER_INFO).unlink(missing_ok=True)
    return done


def recorded_api_url(home: Path = DEFAULT_HOME) -> str | None:
    """The API address `up` recorded in `home`, if it did."""
    try:
        return json.loads((home / SERVER_INFO).read_text())["api_url"]
    except (FileNotFoundError, KeyError, ValueError):
        return None


def _environment(config: StackConfig, home: Path) -> dict[str, str]:
    env = {**os.environ, **config.env}
    env.setdefault("PREFECT_HOME", str(home / "prefect"))
    env["PREFECT_API_URL"] = config.api_url
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_UI_URL"] = config.ui_url
    return env


def _spawn(args: list[str], stem: Path, env: dict[str, str], cwd: Path) -> int:
    """Start `args` in its own session, output appended to `<stem>.log`, pid written to `<stem>.pid`."""
    with open(stem.with_suffix(".log"), "ab") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
    stem.with_suffix(".pid").write_text(str(process.pid))
    return process.pid


def _run(step: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180.0) -> str:
    """Run one step of `up` to completion; its standard output, or ServerError quoting its last lines."""
    try:
        result = subprocess.run(
            args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"could not {step}: `{' '.join(args[2:])}` took over {timeout:g} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ServerError(
            f"could not {step}: `{' '.join(args[2:])}` exited with {result.returncode}:\n{tail}"
        )
    return result.stdout


def _deployments(api_url: str) -> list[str]:
    """Every deployment on the server, as 'flow/deployment'."""
    with httpx.Client(base_url=api_url, timeout=10) as client:
        flows = {f["id"]: f["name"] for f in client.post("/flows/filter", json={}).raise_for_status().json()}
        deployments = client.post("/deployments/filter", json={}).raise_for_status().json()
    return sorted(f"{flows[d['flow_id']]}/{d['name']}" for d in deployments)


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_healthy(api_url: str, pid: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _healthy(api_url):
        if _command_line(pid) is None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise ServerError(f"the Prefect server exited before answering at {api_url}:\n{tail}")
        if time.monotonic() > deadline:
            raise ServerError(
                f"the Prefect server did not answer at {api_url} within {timeout:g} s; see {log}"
            )
        time.sleep(0.5)


def _running(pid_file: Path, role: str) -> int | None:
    """The pid in `pid_file` if that process is alive and is the `role` `up` started (server, worker, fleet)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    command = _command_line(pid)
    owner = "flows.cli" if role in ("fleet", "gateway") else "prefect"
    if command is None or owner not in command or role not in command:
        return None
    return pid


def _command_line(pid: int) -> str | None:
    """The command line of a live (non-zombie) process, or None."""
    _reap(pid)
    result = subprocess.run(
        ["ps", "-o", "stat=,args=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    line = result.stdout.strip()
    if result.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line.split(None, 1)[1] if " " in line else ""


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child that has exited (else it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM the process group `pid` leads, then SIGKILL what is left of it after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process remains in group `pgid`."""
    _reap(pgid)
    listing = subprocess.run(
        ["ps", "-A", "-o", "pgid=,stat="], capture_output=True, text=True, check=False
    ).stdout
    return any(
        len(fields) == 2 and fields[0] == str(pgid) and not fields[1].startswith("Z")
        for fields in (line.split() for line in listing.splitlines())
    )
