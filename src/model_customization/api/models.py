"""GET /v1/models and /v1/models/{id}: the embedded base, tuned models, and agent:<name>[:<task>] deployments."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from model_customization.api.app import handler, in_thread
from model_customization.workspace import Workspace


def _model(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry["id"], "object": "model", "created": entry["created"], "owned_by": entry["owned_by"]}


def routes(ws: Workspace) -> list[Route]:
    from model_customization.serving import models

    @handler
    async def list_models(request: Request) -> JSONResponse:
        listed = await in_thread(models.list_served_models, ws)
        return JSONResponse({"object": "list", "data": [_model(e) for e in listed]})

    @handler
    async def get_model(request: Request) -> JSONResponse:
        entry = await in_thread(models.describe_served_model, ws, request.path_params["model"])
        return JSONResponse(_model(entry))

    return [Route("/models", list_models, methods=["GET"]), Route("/models/{model:path}", get_model, methods=["GET"])]
