"""`files ...`: training files on OpenAI (upload a dataset split, list, delete)."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from model_customization.cli.common import command, console, table
from model_customization.operations.cloud import DeleteTrainingFileRequest, ListTrainingFilesRequest
from model_customization.workspace import Workspace

files_app = typer.Typer(help="Training files on OpenAI: upload a dataset split, list, delete.", no_args_is_help=True)


def _show_upload(result: dict[str, Any]) -> None:
    how = {"uploaded": "uploaded", "reused": "already uploaded from this data home", "found": "already on OpenAI (found in its file list)"}.get(result["how"], result["how"])
    console.print(f"{result['file_id']}: {result['split']} split of {result['dataset_id']}, {result['examples']} examples, {result['bytes']:,} bytes ({how})", markup=False, soft_wrap=True)


@command(files_app, "upload", render=_show_upload)
def files_upload(ws: Workspace, dataset_id: str, split: str = typer.Option("train", help="train, validation or test.")) -> dict[str, Any]:
    """Upload a dataset split to OpenAI for fine-tuning, rendered as OpenAI chat JSONL (the same content is sent once)."""
    from model_customization.providers.openai.files import upload_dataset_file

    return upload_dataset_file(ws, dataset_id, split)


def _show_files(page: dict[str, Any]) -> None:
    shown = table("id", "filename", "bytes", "created_at", "status", "from this data home", whole=("id",))
    for file in page["files"]:
        shown.add_row(escape(file["id"]), escape(file["filename"] or ""), f"{file['bytes']:,}", file["created_at"] or "", str(file["status"] or ""), "yes" if file["uploaded_from_this_data_home"] else "")
    console.print(shown)
    if page["next_after"]:
        console.print(f"more: --after {page['next_after']}", markup=False)


@command(files_app, "list", request=ListTrainingFilesRequest, render=_show_files)
def files_list(ws: Workspace, request: ListTrainingFilesRequest) -> dict[str, Any]:
    """List the fine-tune files on OpenAI for this key, newest first."""
    from model_customization.providers.openai.files import list_files

    return list_files(ws, limit=request.limit, after=request.after)


@command(files_app, "delete", request=DeleteTrainingFileRequest, positional=("file_id",), render=lambda result: console.print(f"{result['id']}: {'deleted' if result['deleted'] else 'not deleted'}", markup=False))
def files_delete(ws: Workspace, request: DeleteTrainingFileRequest) -> dict[str, Any]:
    """Delete a file on OpenAI (a later upload of the same content sends it again)."""
    from model_customization.providers.openai.files import delete_file

    return delete_file(ws, request.file_id)
