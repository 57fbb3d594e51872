"""On-demand run (POST /api/runs) and status (GET /api/status[/runs/{run_id}]), function-key auth.

The run endpoint only validates and enqueues, then answers 202 with a status URL: a sync can take
longer than the 230 s an HTTP-triggered call may block.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from sp_sync.run import jobs
from sp_sync.run.runtime import Runtime

bp = func.Blueprint()
log = logging.getLogger("sp_sync.functions.http")


def _json(status: int, body: object) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, default=str),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
    )


@bp.route(route="runs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def start_run(req: func.HttpRequest) -> func.HttpResponse:
    answer = jobs.handle_run_request(
        req.get_body(), req.headers.get("content-type"), req.url, load_runtime=Runtime.from_env
    )
    return _json(answer.status, answer.body)


@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status(req: func.HttpRequest) -> func.HttpResponse:
    answer = jobs.handle_status_request(None, load_runtime=Runtime.from_env)
    return _json(answer.status, answer.body)


@bp.route(route="status/runs/{run_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def run_status(req: func.HttpRequest) -> func.HttpResponse:
    answer = jobs.handle_status_request(
        req.route_params.get("run_id"), load_runtime=Runtime.from_env
    )
    return _json(answer.status, answer.body)
