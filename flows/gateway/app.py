"""The gateway's HTTP app: OpenAI-compatible chat completions and models, the seeds' operator API,
feedback and Prometheus metrics. Handlers only translate: routing is in service.py, the rest in
flows.operations.

Sync handlers run on Starlette's thread pool with a copy of the serving thread's context, so a
request's task runs belong to the gateway's flow run when the app is served inside one.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows import operations as ops
from flows.gateway import chat
from flows.gateway.auth import authorized
from flows.gateway.service import Gateway, RequestFailed
from routing.errors import ConfigError, RoutingError, UnknownNameError
from routing.feedback import Feedback
from routing.models import RoutedResult

HEADER = "x-adaptive-router-"
SESSION_HEADER = HEADER + "session"


class ExperimentStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    control: str = Field(description="Control policy spec, e.g. thompson.")
    treatments: list[str] = Field(min_length=1, description="Treatment policy specs.")
    traffic: float = Field(default=0.5, gt=0, lt=1)
    min_samples: int = Field(default=100, ge=2)
    metric: str = "success"
    willingness_to_pay: float = Field(default=0.01, gt=0)


class BenchmarkRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = None
    per_category: int | None = Field(default=None, ge=1)


def _error(status: int, message: str, kind: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(chat.error_body(message, kind, code), status_code=status, headers=headers)


def _headers(result: RoutedResult) -> dict[str, str]:
    return {
        HEADER + "target": result.target or "",
        HEADER + "decision-id": result.decision.id,
        HEADER + "task-id": result.task_id,
        HEADER + "cost": f"{result.cost:.8f}",
        HEADER + "attempts": str(len(result.attempts)),
    }


def create_app(gateway: Gateway, admin_token: str | None = None) -> FastAPI:
    """The app over `gateway`; admin routes check `admin_token` (see auth.py)."""
    app = FastAPI(title="adaptive-router gateway", docs_url="/docs", redoc_url=None)
    app.state.gateway = gateway
    started = int(time.time())

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if not authorized(admin_token, authorization):
            raise PermissionError("admin route: send Authorization: Bearer <admin token>")

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(400, f"invalid request: {where}", "invalid_request_error")

    @app.exception_handler(PermissionError)
    def _forbidden(request: Request, exc: PermissionError) -> JSONResponse:
        return _error(401, str(exc), "authentication_error", "invalid_admin_token")

    @app.exception_handler(UnknownNameError)
    def _unknown(request: Request, exc: UnknownNameError) -> JSONResponse:
        return _error(404, str(exc), "invalid_request_error", "not_found")

    @app.exception_handler(ValidationError)
    @app.exception_handler(RoutingError)
    def _bad(request: Request, exc: Exception) -> JSONResponse:
        from routing.validation import describe

        message = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        status = 400 if isinstance(exc, ConfigError | ValidationError) else 500
        return _error(status, message, "invalid_request_error" if status == 400 else "server_error")

    # -- OpenAI-compatible ------------------------------------------------------------------------

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        runtime = gateway.runtime()
        return chat.models([(name, t.tier) for name, t in runtime.router.targets.items()], started)

    @app.post("/v1/chat/completions", response_model=None)
    def chat_completions(
        body: chat.ChatRequest, session: Annotated[str | None, Header(alias=SESSION_HEADER)] = None
    ) -> Response:
        task, target = chat.task_of(body, session)
        try:
            result = gateway.route(task, target)
        except UnknownNameError as exc:
            return _error(404, str(exc), "invalid_request_error", "model_not_found")
        except RequestFailed as exc:
            if exc.budget:
                retry = exc.result.queued_until if exc.result else None
                headers = {"retry-after": str(max(1, int(retry.timestamp() - time.time())))} if retry else None
                return _error(429, str(exc), "insufficient_quota", "budget_exceeded", headers)
            return _error(502, str(exc), "server_error", "all_targets_failed")
        model = gateway.runtime().router.target(result.target).model or result.target
        headers = _headers(result)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(chat.stream(result, model, include_usage), media_type="text/event-stream", headers=headers)
        return JSONResponse(chat.completion(result, model), headers=headers)

    # -- the seeds' operator API ----------------------------------------------------------------------

    def store():
        return gateway.runtime().store

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "runtime": gateway.runtime_name}

    @app.get("/api/v1/benchmarks")
    def get_benchmarks(category: str | None = None) -> dict[str, Any]:
        return ops.benchmarks(store(), category)

    @app.post("/api/v1/admin/run-benchmarks", dependencies=[Depends(admin)])
    def run_benchmarks(body: Annotated[BenchmarkRun | None, Body()] = None) -> dict[str, Any]:
        from flows.benchmark_suite import run_benchmarks as run
        from routing.models import Category

        body = body or BenchmarkRun()
        categories = [Category(c) for c in body.categories] if body.categories else None
        report = run(gateway.runtime_name, categories, body.per_category)
        return {"status": "completed", "results": report.model_dump(mode="json")}

    @app.get("/api/v1/provider-health")
    def provider_health() -> dict[str, Any]:
        return ops.live_health(gateway.runtime())

    @app.get("/api/v1/stats")
    def stats() -> list[dict[str, Any]]:
        return ops.stats(store())

    @app.get("/routing/decisions")
    def decisions(
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        task_id: str | None = None,
        task_type: str | None = None,
        target: str | None = None,
    ) -> list[dict[str, Any]]:
        return ops.recent_decisions(store(), limit, task_id, task_type, target)

    @app.get("/api/v1/experiments")
    def experiments() -> list[dict[str, Any]]:
        return ops.list_experiments(store())

    @app.post("/api/v1/experiments", dependencies=[Depends(admin)], status_code=201)
    def start_experiment(body: ExperimentStart) -> dict[str, Any]:
        return ops.start_experiment(store(), **body.model_dump())

    @app.get("/api/v1/experiments/{name}")
    def experiment(name: str) -> dict[str, Any]:
        return ops.analyze_experiment(store(), name, act=False)

    @app.post("/api/v1/experiments/{name}/analyze", dependencies=[Depends(admin)])
    def analyze_experiment(name: str) -> dict[str, Any]:
        return ops.analyze_experiment(store(), name, act=True)

    @app.post("/api/v1/experiments/{name}/stop", dependencies=[Depends(admin)])
    def stop_experiment(name: str) -> dict[str, Any]:
        return ops.stop_experiment(store(), name)

    @app.get("/api/v1/policies/recommendations")
    def recommendations(task_type: str | None = None) -> dict[str, Any]:
        return ops.policy_recommendations(store(), task_type)

    @app.post("/api/v1/admin/policies/rollback/{snapshot_id}", dependencies=[Depends(admin)])
    def rollback(snapshot_id: str) -> dict[str, Any]:
        return ops.rollback_policy(store(), snapshot_id, "gateway")

    @app.post("/api/v1/feedback", status_code=201)
    def feedback(body: dict[str, Any]) -> dict[str, Any]:
        given = Feedback.model_validate(body)
        received = ops.give_feedback(store(), given, gateway.runtime())
        gateway.metrics.feedback.labels(given.verdict).inc()
        return received

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
