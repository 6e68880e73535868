"""/v1/files: upload a training file (multipart, purpose fine-tune), list, get, read back, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from model_customization.api.app import handler, in_thread
from model_customization.api.errors import ApiError
from model_customization.workspace import Workspace

FILE_FIELDS = ("id", "object", "bytes", "created_at", "filename", "purpose", "status")


def _file(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in FILE_FIELDS}


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer (got {raw!r}).", param=name) from None


def routes(ws: Workspace) -> list[Route]:
    from model_customization.paths import memory_limits
    from model_customization.serving import files

    @handler
    async def upload(request: Request) -> JSONResponse:
        limit = memory_limits().max_file_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise ApiError(413, f"The upload is {int(declared):,} bytes; files up to {limit:,} bytes are taken (MODEL_CUSTOMIZATION_MAX_FILE_BYTES).", param="file", code="file_too_large")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(400, "Upload the file as multipart/form-data with the fields file and purpose (the OpenAI SDK's files.create does).", param="file")
        async with request.form(max_files=1, max_fields=8, max_part_size=limit) as form:
            upload = form.get("file")
            purpose = form.get("purpose")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "The form has no file field; send the JSONL file as 'file'.", param="file")
            if not isinstance(purpose, str):
                raise ApiError(400, "The form has no purpose field; send purpose=fine-tune.", param="purpose")
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise ApiError(413, f"The file is over {limit:,} bytes, the most taken (MODEL_CUSTOMIZATION_MAX_FILE_BYTES).", param="file", code="file_too_large")
            record = await in_thread(files.upload_file, ws, upload.filename or "upload.jsonl", purpose, data)
        return JSONResponse(_file(record))

    @handler
    async def list_files(request: Request) -> JSONResponse:
        query = request.query_params
        shown, has_more = await in_thread(
            files.list_files, ws, purpose=query.get("purpose"), after=query.get("after"), limit=_int(request, "limit", 10000), order=query.get("order", "desc")
        )
        data = [_file(r) for r in shown]
        # the spec has first_id and last_id as strings, always: an empty page names no file
        return JSONResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else "", "last_id": data[-1]["id"] if data else "", "has_more": has_more})

    @handler
    async def get_file(request: Request) -> JSONResponse:
        return JSONResponse(_file(await in_thread(files.get_file, ws, request.path_params["file_id"])))

    @handler
    async def content(request: Request) -> Response:
        data = await in_thread(files.file_content, ws, request.path_params["file_id"])
        return Response(data, media_type="application/octet-stream")

    @handler
    async def delete(request: Request) -> JSONResponse:
        return JSONResponse(await in_thread(files.delete_file, ws, request.path_params["file_id"]))

    return [
        Route("/files", upload, methods=["POST"]),
        Route("/files", list_files, methods=["GET"]),
        Route("/files/{file_id}", get_file, methods=["GET"]),
        Route("/files/{file_id}", delete, methods=["DELETE"]),
        Route("/files/{file_id}/content", content, methods=["GET"]),
    ]
