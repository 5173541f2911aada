"""Query planning: SQLite plans without statistics (the collector runs no ANALYZE), and then takes
any index with an equality on its first column, such as ``gone = 0``, over the index that gives a page in
order or the one a selective filter wants. The roster's queries therefore say which index they mean:

- ``with_hint(table, "INDEXED BY ix_...", "sqlite")`` names an index (SQLAlchemy renders no table hints
  for SQLite by itself; the collector's SQLite engines compile with ``HintingSQLiteCompiler``, which does,
  and every other engine in the process is left as it was);
- ``unindexed(column)`` is the column for SQLite's planner to leave alone (``+column``, SQLite's own
  idiom), and the plain column everywhere else: PostgreSQL plans from its statistics.

``holds(column, text)`` is a plain substring test (``instr`` on SQLite, ``strpos`` on PostgreSQL), for
counting a stored JSON list's members over many rows: it costs a fraction of ``LIKE '%...%'``, which
folds case and reads its pattern for every row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Engine
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class unindexed(FunctionElement[bool]):  # noqa: N801  (used like a SQL function)
    """A boolean column that SQLite must not pick an index for."""

    type = Boolean()
    inherit_cache = True
    name = "unindexed"


@compiles(unindexed)
def _plain(element: unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(unindexed, "sqlite")
def _unary_plus(element: unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


class HintingSQLiteCompiler(SQLiteCompiler):
    """SQLite's compiler, rendering a table's hint (``INDEXED BY ...``) after the table's name."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


def render_index_hints(engine: Engine) -> None:
    """Make ``engine`` (a SQLite one) render the hints of its statements; its compiled-statement cache is its
    own, so no other engine sees a hint."""
    engine.dialect.statement_compiler = HintingSQLiteCompiler


class holds(FunctionElement[bool]):  # noqa: N801  (used like a SQL function)
    """Whether a text column holds a substring, case and all."""

    type = Boolean()
    inherit_cache = True
    name = "holds"


@compiles(holds)
def _strpos(element: holds, compiler: Any, **kw: Any) -> str:
    column, text = list(element.clauses)
    return f"(strpos({compiler.process(column, **kw)}, {compiler.process(text, **kw)}) > 0)"


@compiles(holds, "sqlite")
def _instr(element: holds, compiler: Any, **kw: Any) -> str:
    column, text = list(element.clauses)
    return f"(instr({compiler.process(column, **kw)}, {compiler.process(text, **kw)}) > 0)"
