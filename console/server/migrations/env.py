"""Alembic environment: runs on the connection the collector hands over (``db.migrate``).

Without one (a developer running ``alembic revision --autogenerate`` with ``-x url=...``) it opens
its own engine on that URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import console.server.models  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        from console.server.db import make_engine

        url = context.get_x_argument(as_dictionary=True)["url"]
        with make_engine(url).begin() as conn:
            _run_on(conn)
        return
    _run_on(connection)


def _run_on(connection: Connection) -> None:
    from console.server.search import outside_models  # the search's own tables and index: not in the models

    context.configure(connection=connection, target_metadata=target_metadata, include_name=outside_models,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
