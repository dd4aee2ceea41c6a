"""Every block to Prefect's own standard (BlockStandardTestSuite), plus lifecycle and pickling.

The blocks are found by walking Block's subclasses, so a block added later is held to the same checks.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from targets_support import run

import blocks
from blocks import (
    AgnoTarget,
    DuckDBStore,
    LlamaIndexTarget,
    OpenAICompatibleTarget,
    PrefectDeploymentTarget,
    RouterSettings,
)
from routing import ExecutionRecord, Task


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


BLOCKS = sorted(
    {c for c in _subclasses(Block) if c.__module__.startswith("blocks.") and not inspect.isabstract(c)},
    key=lambda c: c.__name__,
)


def test_every_exported_block_is_checked() -> None:
    exported = {getattr(blocks, name) for name in blocks.__all__}
    assert set(BLOCKS) == {c for c in exported if not inspect.isabstract(c)}
    assert len(BLOCKS) == 6


REGISTERED = """
import importlib, sys
import blocks.store.history  # what a read-only command imports first: no Prefect yet
assert "prefect" not in sys.modules
from prefect.blocks.core import Block
from prefect.utilities.dispatch import get_registry_for_type
importlib.import_module(sys.argv[1])  # what Prefect does with the collection's entry point
print(" ".join(sorted(slug for slug in get_registry_for_type(Block) if slug.startswith("adaptive-router"))))
"""


@pytest.mark.slow
def test_the_collection_entry_point_registers_every_block_whatever_was_imported_first() -> None:
    project = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    module = pyproject["project"]["entry-points"]["prefect.collections"]["prefect_adaptive_router"]
    done = subprocess.run([sys.executable, "-c", REGISTERED, module], cwd=project, capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.split() == sorted(c.get_block_type_slug() for c in BLOCKS)
    assert {name for name, _ in inspect.getmembers(blocks)} >= set(blocks.__all__)  # `prefect block register -m blocks`


class TestBlockStandard(BlockStandardTestSuite):
    @pytest.fixture(params=BLOCKS, ids=lambda c: c.__name__)
    def block(self, request: pytest.FixtureRequest) -> type[Block]:
        return request.param

    # Prefect's test_has_a_valid_image downloads `_logo_url` and measures the picture; tests here run
    # offline, so it is replaced by the part that needs no network: every block names a logo over https.
    test_has_a_valid_image = None

    def test_has_a_logo_url(self, block: type[Block]) -> None:
        assert block._logo_url is not None and str(block._logo_url).startswith("https://")


# -- pickling -------------------------------------------------------------------------------------------

ENDPOINT = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
SAMPLES = {
    DuckDBStore: {"database": "router.duckdb", "fsync": True},
    RouterSettings: {"targets": ["adaptive-router-agno-target/a"], "strategy": "weighted", "seed": 3},
    OpenAICompatibleTarget: {"target_name": "h", "system_prompt": "Be brief.", **ENDPOINT},
    AgnoTarget: {"target_name": "a", "mode": "team", "members": [{"name": "m1"}], **ENDPOINT},
    LlamaIndexTarget: {"target_name": "l", "similarity_top_k": 5, **ENDPOINT},
    PrefectDeploymentTarget: {"target_name": "p", "deployment_name": "flow/deployment"},
}


def test_samples_cover_every_block() -> None:
    assert set(SAMPLES) == set(BLOCKS)


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_pickle_round_trip_keeps_the_settings(cls: type[Block]) -> None:
    block = cls(**SAMPLES[cls])
    copy = pickle.loads(pickle.dumps(block))
    assert type(copy) is cls and copy.model_dump() == block.model_dump()
    assert copy.__pydantic_private__.keys() == block.__pydantic_private__.keys()  # runtime state rebuilt


def test_a_store_with_an_open_spool_segment_pickles_and_the_copy_writes_its_own(tmp_path: Path) -> None:
    store = DuckDBStore(database=str(tmp_path / "router.duckdb"))
    store.record_execution(_record("before"))
    copy = pickle.loads(pickle.dumps(store))
    copy.record_execution(_record("copy"))
    store.record_execution(_record("after"))
    assert len(list(store.spool_path.glob("*.open"))) == 2  # one locked segment per writer
    assert store.ingest().executions == 1 + 1  # seals the original's; the copy's stays locked
    copy.close()
    assert copy.ingest().executions == 1
    assert store.query("SELECT count(*) AS n FROM executions") == [{"n": 3}]


# -- lifecycle --------------------------------------------------------------------------------------------


def test_leaving_a_store_context_seals_its_spool_segment(tmp_path: Path) -> None:
    with DuckDBStore(database=str(tmp_path / "router.duckdb")) as store:
        store.record_execution(_record("one"))
        assert [p.suffix for p in store.spool_path.iterdir()] == [".open"]
    assert [p.suffix for p in store.spool_path.iterdir()] == [".jsonl"]
    store.record_execution(_record("two"))  # still usable: a new segment
    store.close()
    store.close()  # closing twice is harmless
    assert sorted(p.suffix for p in store.spool_path.iterdir()) == [".jsonl", ".jsonl"]
    assert store.ingest(seal=False).executions == 2


class CountingTransport(httpx.AsyncBaseTransport):
    """Answers every chat completion and counts requests and closes: the client's lifecycle, seen from outside."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": []})
        body = {"choices": [{"message": {"content": "four"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
        return httpx.Response(200, json=body)

    async def aclose(self) -> None:
        self.closed += 1


def test_a_target_context_closes_its_client_and_an_open_target_pickles() -> None:
    transport = CountingTransport()
    target = OpenAICompatibleTarget(target_name="h", **ENDPOINT).use_transport(transport)

    async def scenario():
        async with target:
            result = await target.execute(Task(task_type="qa", payload="2 + 2?"))
            copy = pickle.loads(pickle.dumps(target))  # with a pooled client open
            assert transport.closed == 0
        return result, copy

    result, copy = asyncio.run(scenario())
    assert result.ok and result.output == "four" and (result.input_tokens, result.output_tokens) == (3, 1)
    assert transport.closed == 1 and transport.requests == ["/v1/chat/completions"]
    assert copy.model_dump() == target.model_dump()


def test_the_transport_hook_serves_the_health_probe_and_is_not_pickled() -> None:
    transport = CountingTransport()
    target = AgnoTarget(target_name="a", **ENDPOINT).use_transport(transport)
    assert run(target, target.health()).healthy and transport.requests == ["/v1/models"]
    copy = pickle.loads(pickle.dumps(target))
    report = run(copy, copy.health())  # the copy goes to the (closed) network port again
    assert not report.healthy and transport.requests == ["/v1/models"]


def _record(task_id: str) -> ExecutionRecord:
    return ExecutionRecord(task_id=task_id, task_type="qa", target="a", success=True, duration_ms=1.0)
