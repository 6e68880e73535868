"""Folder paths in the ledger relative to the data home, so that a moved or restored home still finds its files.

Until now datasets.path, models.path and evaluations.path held absolute paths. A path inside the home the store was
opened with becomes relative to it. A path elsewhere that has the product's own layout (a home that was moved or
copied since: <old home>/datasets/<id>, <old home>/evals/<id>, <old home>/jobs/<job>/adapter) becomes the same
relative path, so it points into the home the ledger now sits in. Any other path (outside every home) is kept.

Revision ID: 0003_home_relative_paths
Revises: 0002_job_leases
Create Date: 2026-12-06
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from alembic import context, op

revision = "0003_home_relative_paths"
down_revision = "0002_job_leases"
branch_labels = None
depends_on = None


def _relative(table: str, row_id: str, path: str, home: Path | None) -> str | None:
    """The home-relative form of an absolute stored path, or None to keep it as it is."""
    if not path or not Path(path).is_absolute():
        return None
    folder = Path(path)
    if home is not None:
        try:
            return folder.relative_to(home).as_posix()
        except ValueError:
            pass
    parts = folder.parts
    if table == "datasets" and len(parts) >= 2 and parts[-2] == "datasets" and parts[-1] == row_id:
        return f"datasets/{row_id}"
    if table == "evaluations" and len(parts) >= 2 and parts[-2] == "evals" and parts[-1] == row_id:
        return f"evals/{row_id}"
    if table == "models" and len(parts) >= 3 and parts[-3] == "jobs" and parts[-1] == "adapter":
        return str(PurePosixPath("jobs", parts[-2], "adapter"))
    return None


def upgrade() -> None:
    home = context.config.attributes.get("home")
    home = Path(home) if home else None
    conn = op.get_bind()
    for name in ("datasets", "models", "evaluations"):
        table = sa.table(name, sa.column("id", sa.String), sa.column("path", sa.Text))
        for row_id, path in conn.execute(sa.select(table.c.id, table.c.path)).all():
            relative = _relative(name, row_id, path, home)
            if relative is not None:
                conn.execute(sa.update(table).where(table.c.id == row_id).values(path=relative))


def downgrade() -> None:
    home = context.config.attributes.get("home")
    if not home:
        raise RuntimeError("downgrading 0003 needs the data home (config.attributes['home']) to make paths absolute again")
    conn = op.get_bind()
    for name in ("datasets", "models", "evaluations"):
        table = sa.table(name, sa.column("id", sa.String), sa.column("path", sa.Text))
        for row_id, path in conn.execute(sa.select(table.c.id, table.c.path)).all():
            if path and not Path(path).is_absolute():
                conn.execute(sa.update(table).where(table.c.id == row_id).values(path=str(Path(home).joinpath(*PurePosixPath(path).parts))))
