"""/v1/fine_tuning/jobs: create (a local job), list, get, events, checkpoints, cancel, pause, resume."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from model_customization.api.app import handler, in_thread, read_json
from model_customization.api.files import _int
from model_customization.workspace import Workspace


def _page(data: list, has_more: bool, **extra: object) -> JSONResponse:
    return JSONResponse({"object": "list", "data": data, "has_more": has_more, **extra})


def routes(ws: Workspace) -> list[Route]:
    from model_customization.operations.serving import CreateFineTuningJobRequest
    from model_customization.serving import fine_tuning

    @handler
    async def create(request: Request) -> JSONResponse:
        parsed = CreateFineTuningJobRequest.model_validate(await read_json(request))
        return JSONResponse(await in_thread(fine_tuning.create_job, ws, parsed))

    @handler
    async def list_jobs(request: Request) -> JSONResponse:
        # metadata filters come as metadata[key]=value (deepObject), as the SDK sends them
        metadata = {k[len("metadata["):-1]: v for k, v in request.query_params.multi_items() if k.startswith("metadata[") and k.endswith("]")}
        jobs, has_more = await in_thread(fine_tuning.list_jobs, ws, after=request.query_params.get("after"), limit=_int(request, "limit", 20), metadata=metadata or None)
        return _page(jobs, has_more)

    @handler
    async def get_job(request: Request) -> JSONResponse:
        return JSONResponse(await in_thread(fine_tuning.get_job, ws, request.path_params["job_id"]))

    @handler
    async def events(request: Request) -> JSONResponse:
        shown, has_more = await in_thread(fine_tuning.job_events, ws, request.path_params["job_id"], after=request.query_params.get("after"), limit=_int(request, "limit", 20))
        return _page(shown, has_more)

    @handler
    async def checkpoints(request: Request) -> JSONResponse:
        shown, has_more = await in_thread(fine_tuning.job_checkpoints, ws, request.path_params["job_id"], after=request.query_params.get("after"), limit=_int(request, "limit", 10))
        return _page(shown, has_more, first_id=shown[0]["id"] if shown else None, last_id=shown[-1]["id"] if shown else None)

    def control(operation):
        @handler
        async def endpoint(request: Request) -> JSONResponse:
            return JSONResponse(await in_thread(operation, ws, request.path_params["job_id"]))

        endpoint.__name__ = operation.__name__
        return endpoint

    return [
        Route("/fine_tuning/jobs", create, methods=["POST"]),
        Route("/fine_tuning/jobs", list_jobs, methods=["GET"]),
        Route("/fine_tuning/jobs/{job_id}", get_job, methods=["GET"]),
        Route("/fine_tuning/jobs/{job_id}/events", events, methods=["GET"]),
        Route("/fine_tuning/jobs/{job_id}/checkpoints", checkpoints, methods=["GET"]),
        Route("/fine_tuning/jobs/{job_id}/cancel", control(fine_tuning.cancel_job), methods=["POST"]),
        Route("/fine_tuning/jobs/{job_id}/pause", control(fine_tuning.pause_job), methods=["POST"]),
        Route("/fine_tuning/jobs/{job_id}/resume", control(fine_tuning.resume_job), methods=["POST"]),
    ]
