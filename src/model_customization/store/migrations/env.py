"""Alembic's entry point for the store's migrations.

The product runs them itself when a Store opens (it hands over its own connection in
`config.attributes["connection"]`). A developer can also run the alembic command line against a store:
`alembic -x url=sqlite:////path/ledger.sqlite3 -c <this folder>/alembic.ini history`; without `-x url`, the
MODEL_CUSTOMIZATION_STORE_URL variable is used.
"""

from __future__ import annotations

import os

from alembic import context

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
else:
    from sqlalchemy import create_engine

    from model_customization.store.database import normalize_store_url

    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("MODEL_CUSTOMIZATION_STORE_URL")
    if not url:
        raise SystemExit("Give the store: alembic -x url=<database URL> ..., or set MODEL_CUSTOMIZATION_STORE_URL.")
    engine = create_engine(normalize_store_url(url))
    with engine.begin() as own_connection:
        context.configure(connection=own_connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
