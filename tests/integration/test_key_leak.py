"""A provider that echoes the API key in its 401 body: the key must appear nowhere we keep or show
(issue 10, fault class 6): not in the store, the logs, Prefect's states, logs or events."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blocks.store import DuckDBStore
from blocks.targets.http import OpenAICompatibleTarget
from flows.route import route
from flows.runtime import RoutingRuntime, log_transition, register_runtime, unregister_runtime
from routing import AllTargetsFailedError, Task
from routing.calls.breaker import BreakerBoard, BreakerConfig
from routing.calls.retry import RetryPolicy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAIN_KEY = "correct-horse-battery-7"  # not key-shaped: only the target's own redaction catches it
SHAPED_KEY = "sk-proj-Zq81mVbq0c7D4e5F6g7H8i9J"


class EchoingProvider(BaseHTTPRequestHandler):
    """Answers every call 401 and repeats the Authorization header it got, as careless providers do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        sent = self.headers.get("authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {sent}. Your key {sent.split()[-1]} is invalid."}})
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_an_echoed_key_is_nowhere(prefect_harness, provider: str, store: DuckDBStore, caplog) -> None:
    targets = [
        OpenAICompatibleTarget(target_name="plain", base_url=provider, model="m", api_key=PLAIN_KEY),
        OpenAICompatibleTarget(target_name="shaped", base_url=provider, model="m", api_key=SHAPED_KEY),
    ]
    breakers = BreakerBoard(BreakerConfig(failure_threshold=1), on_transition=log_transition)  # events carry errors
    runtime = RoutingRuntime.build(targets, store, breakers=breakers, retry=RetryPolicy(max_retries=0))
    register_runtime("leaky", runtime)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(AllTargetsFailedError) as failed:
            route(Task(task_type="qa", payload="hello"), runtime="leaky")
    finally:
        unregister_runtime("leaky")
    assert "[redacted]" in str(failed.value) and "401" in str(failed.value)

    store.ingest()
    seen = {"error": str(failed.value), "logs": caplog.text}
    seen["store"] = json.dumps(
        [store.query(f"SELECT * FROM {table}") for table in ("executions", "routing_decisions")], default=str
    )
    seen["prefect"] = _everything_prefect_kept()
    assert "Incorrect API key provided" in seen["store"]  # the error itself was kept...
    assert "adaptive-router.breaker.open" in seen["prefect"]  # ...and emitted (events were read back)
    for where, text in seen.items():  # ...without either key
        assert PLAIN_KEY not in text, where
        assert SHAPED_KEY not in text and SHAPED_KEY[8:] not in text, where


def _events(client) -> list[dict]:
    page = client._client.post("/events/filter", json={"limit": 50}).json()
    events = page["events"]
    while page.get("next_page"):
        page = client._client.get(page["next_page"]).json()
        events += page["events"]
    return events


def _everything_prefect_kept() -> str:
    """States and their messages, run logs and events, as the Prefect API holds them."""
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        states = [client.read_flow_run_states(run.id) for run in runs]
        tasks = client.read_task_runs()
        logs = client.read_logs()
        deadline = time.monotonic() + 30
        while True:  # the server persists events in batches
            events = _events(client)
            if any(e["event"].startswith("adaptive-router.breaker") for e in events) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return json.dumps(
        {
            "runs": [r.model_dump(mode="json") for r in runs],
            "states": [[s.model_dump(mode="json") for s in group] for group in states],
            "tasks": [t.model_dump(mode="json") for t in tasks],
            "logs": [entry.message for entry in logs],
            "events": events,
        }
    )
