"""n8n: the workflows a running n8n holds that contain AI agent nodes, read from its SQLite database.

n8n keeps its workflows in ``database.sqlite`` in its user folder (``$N8N_USER_FOLDER/.n8n``, else
``~/.n8n``), table ``workflow_entity``: a name, whether it is active, and its nodes as JSON. A node of
n8n's LangChain package (``@n8n/n8n-nodes-langchain.agent``, ``.lmChatOpenAi``…) says the workflow runs
an AI agent and which model provider it calls; a node's ``credentials`` map names the kinds of credential
it uses (``openAiApi``), whose values stay encrypted in another table that is never read.

An export (``n8n export:workflow --all --separate --output=DIR``: one JSON file per workflow, or without
``--separate`` one file holding a list) has the same name, active flag and nodes; it is read when an n8n
command names it (``export:workflow --output``, ``import:workflow --input``), file by file as project
files are.

The database is the n8n user's file, which that user may swap for a link or a FIFO at any moment: it is
read once (a regular file below that folder, no link out, owned by the process's user or root, at most
``STORE_BYTES``, charged to the scan's budget) and SQLite only ever queries that copy (``read_rows``),
bounded in rows, bytes and SQLite steps.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
from typing import TYPE_CHECKING
from urllib.parse import quote

from endpoint.scan.projects import MANIFEST_BYTES, Found

if TYPE_CHECKING:
    from collections.abc import Callable

    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import Reads

    #: SQL, or what writes it once it has seen the store's schema (n8n's has changed over its versions)
    Query = str | Callable[[sqlite3.Connection], str]

MAX_WORKFLOWS = 500
#: a version as package.json or METADATA writes it; anything else is not used
VERSION = re.compile(r"[0-9][0-9A-Za-z.+-]{0,39}")
MAX_NODES_JSON = 2 << 20  # characters of one workflow's nodes read (and bytes of one exported file)
EXPORT_FILES = 200  # files of an export folder read
MAX_STEPS = 2_000_000  # SQLite virtual-machine steps for the whole query
STORE_BYTES = 32 << 20  # a platform's store is read whole into memory (see read_rows): at most this
VALUE_BYTES = 4 * MAX_NODES_JSON  # the largest value SQLite may make in a query (2 Mi characters of UTF-8)
ROWS_BYTES = 32 << 20  # what all the rows of one query may hold together
LANGCHAIN = "@n8n/n8n-nodes-langchain."
#: node types (after LANGCHAIN) that are an AI agent
AGENTS = frozenset({"agent", "agentTool", "openAiAssistant", "chainLlm", "chainRetrievalQa"})
#: model nodes (after LANGCHAIN) -> the provider they call
PROVIDERS = {"lmChatOpenAi": "openai", "lmOpenAi": "openai", "openAi": "openai", "openAiAssistant": "openai",
             "lmChatAzureOpenAi": "azure-openai", "lmChatAnthropic": "anthropic", "anthropic": "anthropic",
             "lmChatGoogleGemini": "google-gemini", "googleGemini": "google-gemini",
             "lmChatGoogleVertex": "google-vertex", "lmChatMistralCloud": "mistral", "lmChatGroq": "groq",
             "lmChatOllama": "ollama", "lmOllama": "ollama", "lmChatDeepSeek": "deepseek",
             "lmChatOpenRouter": "openrouter", "lmChatXAiGrok": "xai", "lmChatAwsBedrock": "aws-bedrock",
             "lmCohere": "cohere", "lmChatVercelAiGateway": "openai"}

Workflow = tuple[str, bool, int, tuple[str, ...], tuple[str, ...]]  # name, active, agent nodes, providers, credentials


def runs_n8n(record: ProcessRecord) -> bool:
    """Whether the process is n8n itself (``n8n start``, ``node …/node_modules/n8n/bin/n8n``)."""
    return any(os.path.basename(arg) == "n8n" for arg in record.cmdline[:3])


def user_folder(record: ProcessRecord) -> str:
    """n8n's folder for this process: ``$N8N_USER_FOLDER/.n8n``, else ``$HOME/.n8n``."""
    base = record.env_values.get("N8N_USER_FOLDER") or record.env_values.get("HOME") or ""
    return os.path.join(base, ".n8n") if os.path.isabs(base) else ""


def export_target(record: ProcessRecord, cwd: str) -> str:
    """The folder (or file) an ``n8n export:workflow``/``import:workflow`` command names with ``--output``/
    ``--input``, as this process reaches it; "" for any other n8n command."""
    args = record.cmdline[1:12]
    if not any(a in ("export:workflow", "import:workflow") for a in args):
        return ""
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in ("--output", "--input", "-o"):
            value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            if value and not value.startswith("-"):
                return os.path.normpath(os.path.join(cwd, value)) if cwd or os.path.isabs(value) else ""
    return ""


def read_export(path: str, reads: Reads) -> list[Workflow]:
    """The workflows with AI agent nodes in an n8n export: a folder of one JSON file per workflow
    (``--separate``) or one file holding a list of them (``--all --output=FILE``); at most ``EXPORT_FILES``
    files, each read as any project file is (its user's or root's, capped, links kept inside the folder)."""
    if reads.isdir(path):
        folder = path
        names = sorted(n for n in reads.listing(path) if n.endswith(".json"))[:EXPORT_FILES]
    elif reads.isfile(path):
        folder, names = os.path.dirname(path), [os.path.basename(path)]
    else:
        return []
    found: list[Workflow] = []
    for name in names:
        text = reads.text(os.path.join(folder, name), folder, limit=MAX_NODES_JSON, code=False)
        if text is None:
            continue
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            reads.error(os.path.join(folder, name), "syntax", "not JSON; not an n8n workflow export")
            continue
        for item in (doc if isinstance(doc, list) else [doc])[:MAX_WORKFLOWS]:
            if isinstance(item, dict) and isinstance(item.get("nodes"), list):
                workflow = _nodes_workflow(item.get("name", name), item.get("active", False), item["nodes"])
                if workflow is not None:
                    found.append(workflow)
        if len(found) >= MAX_WORKFLOWS:
            break
    return found[:MAX_WORKFLOWS]


def resolve(record: ProcessRecord, reads: Reads, cwd: str = "") -> Found | None:
    target = export_target(record, cwd)
    if target:  # n8n export:workflow / import:workflow: the workflows of its export
        return Found(target, "n8n export", [], [], read_export(target, reads))
    folder = user_folder(record)
    if not folder:
        return None
    rows = read_rows(folder, "database.sqlite", workflows_query, (MAX_NODES_JSON, MAX_WORKFLOWS), reads,
                     "n8n's database")
    version = installed_version(record, reads, "n8n")
    return Found(folder, "n8n", [], [("npm", "n8n", version, "node_modules")] if version else [],
                 [w for w in (_workflow(*row) for row in rows) if w is not None])


def installed_version(record: ProcessRecord, reads: Reads, package: str) -> str:
    """The version of the npm ``package`` whose program the process runs, from that package's package.json
    (``…/node_modules/n8n/bin/n8n`` -> ``…/node_modules/n8n/package.json``; Flowise's ``…/flowise/bin/run``
    likewise); "" when it cannot be told.

    The program is named on the command line (``node …/node_modules/n8n/bin/n8n start``) or through the link a
    global install puts on the PATH (``/usr/local/bin/n8n`` -> ``../lib/node_modules/n8n/bin/n8n``), followed
    on the host, or taken to be npm's global layout (``PREFIX/bin`` beside ``PREFIX/lib/node_modules``). The
    manifest is read as a project's is (its user's or root's, capped) and must name ``package`` itself."""
    script = next((arg for arg in record.cmdline[:3]
                   if os.path.basename(arg) == package or f"/node_modules/{package}/" in arg), "")
    if not os.path.isabs(script):
        return ""
    folders = [_package_folder(script, package)]
    if not folders[0]:
        if reads.in_root is None:
            folders.append(_package_folder(os.path.realpath(script), package))
        prefix = os.path.dirname(os.path.dirname(script))  # npm's global layout: PREFIX/bin/n8n
        folders.append(os.path.join(prefix, "lib", "node_modules", package))
    for folder in dict.fromkeys(f for f in folders if f):
        where, manifest = reads, os.path.join(folder, "package.json")
        if not reads.isfile(manifest) and reads.in_root is None and _own_mounts(record.pid):
            # a service with mounts of its own (systemd's BindPaths=, PrivateTmp=, an unshared namespace)
            # sees its install where the host sees another folder: read it as the process sees it
            from endpoint.scan.containers import InRoot
            from endpoint.scan.projects import Reads

            where = Reads(reads.scan, reads.uid, resolver=reads.resolver, in_root=InRoot(record.pid))
            folder = where.in_root.prefix + folder if where.in_root is not None else folder
            manifest = os.path.join(folder, "package.json")
        if not where.isfile(manifest):
            continue
        text = where.text(manifest, folder, limit=MANIFEST_BYTES, code=False)
        try:
            data = json.loads(text) if text else None
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            continue
        version = data.get("version") if isinstance(data, dict) and data.get("name") == package else None
        if isinstance(version, str) and VERSION.fullmatch(version):
            return version
    return ""


def _own_mounts(pid: int) -> bool:
    """Whether process ``pid`` is in a mount namespace other than ours (False when that cannot be told)."""
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        return False


def _package_folder(script: str, package: str) -> str:
    """The folder of ``package`` a script path inside ``…/node_modules/PACKAGE/`` lies in, else ""."""
    marker = f"/node_modules/{package}/"
    at = script.replace("\\", "/").rfind(marker)
    return script[: at + len(marker) - 1] if at >= 0 else ""


def workflows_query(db: sqlite3.Connection) -> str:
    """The query of a workflow's name, active flag and nodes for this database's schema. Since n8n 2 an
    active workflow runs the version it published (``activeVersionId``, its nodes in ``workflow_history``),
    not the draft ``workflow_entity.nodes`` holds, which may since have been edited; an archived workflow
    (``isArchived``, n8n 1.9x on) is in n8n's bin, neither run nor shown: it is left out."""
    columns = {row[0] for row in db.execute("SELECT name FROM pragma_table_info('workflow_entity')")}
    history = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workflow_history'").fetchone()
    nodes, join, where = "w.nodes", "", ""
    if "activeVersionId" in columns and history:
        nodes, join = "COALESCE(h.nodes, w.nodes)", " LEFT JOIN workflow_history h ON h.versionId = w.activeVersionId"
    if "isArchived" in columns:
        where = " WHERE NOT coalesce(w.isArchived, 0)"
    return f"SELECT w.name, w.active, substr({nodes}, 1, ?) FROM workflow_entity w{join}{where} LIMIT ?"


def read_rows(folder: str, name: str, sql: Query, params: tuple[object, ...], reads: Reads,
              what: str) -> list[tuple[object, ...]]:
    """The rows ``sql`` selects from the SQLite database ``name`` in a platform's ``folder``: [] when it is
    not there (not made yet, or the platform on another database), or with one error on ``reads`` when it
    is there but not usable (a link out of the folder, a FIFO, another user's file, too large, no database).

    The store is the platform user's file and may be swapped for a link or a FIFO at any moment: it is
    read once, through one descriptor, as any project file is (``Reads.data``: a regular file below the
    folder, owned by the process's user or root, charged to the scan's budget), at most ``STORE_BYTES``,
    and SQLite is only ever given that copy, never the user's path (it would open the path again and
    follow whatever link is there by then). A container's store is read the same way through its root."""
    path = os.path.join(folder, name)
    main = reads.data(path, folder, limit=STORE_BYTES,
                      too_large=f"{what}'s workflows are not listed: prune its old executions or VACUUM it")
    if main is None:
        return []
    wal = b""
    if main[18:20] == b"\x02\x02":  # WAL mode: the latest writes may sit in the -wal file beside it
        wal = reads.data(path + "-wal", folder, limit=max(STORE_BYTES - len(main), 1)) or b""
    try:
        rows, complete = _query_copy(main, wal, sql, params) if wal else _query_bytes(main, sql, params)
    except sqlite3.Error as exc:
        reads.error(path, "unreadable", f"{what}: {exc}")
        return []
    if not complete:
        reads.error(path, "too_large", f"{what}: its rows came to over {ROWS_BYTES >> 20} MiB; the rest were not read")
    return rows


Rows = tuple[list[tuple[object, ...]], bool]  # the rows, and whether they are all of them


def _bounded(db: sqlite3.Connection, sql: Query, params: tuple[object, ...]) -> Rows:
    """``sql``'s rows, the query cut off after ``MAX_STEPS`` SQLite steps (a store crafted to be slow), no value
    over ``VALUE_BYTES`` made and no more than ``ROWS_BYTES`` of them fetched: a few KiB of store can hold a
    view (or a generated column) that makes 500 values of megabytes each, in the root scan's memory."""
    steps = [0]

    def too_long() -> int:
        steps[0] += 1000
        return 1 if steps[0] > MAX_STEPS else 0  # non-zero aborts the query

    db.set_progress_handler(too_long, 1000)
    db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, VALUE_BYTES)
    rows: list[tuple[object, ...]] = []
    fetched = 0
    for row in db.execute(sql(db) if callable(sql) else sql, params):
        fetched += sum(len(v) for v in row if isinstance(v, (str, bytes)))
        if fetched > ROWS_BYTES:
            return rows, False
        rows.append(row)
    return rows, True


def _query_bytes(data: bytes, sql: Query, params: tuple[object, ...]) -> Rows:
    """``sql``'s rows from a database image held in memory."""
    if data[18:20] == b"\x02\x02":
        # SQLite's in-memory files cannot be in WAL mode (the image would not open): with no -wal to apply,
        # the image is the whole database, marked as a rollback-journal one
        data = data[:18] + b"\x01\x01" + data[20:]
    db = sqlite3.connect(":memory:")
    try:
        db.deserialize(data)
        return _bounded(db, sql, params)
    finally:
        db.close()


def _query_copy(main: bytes, wal: bytes, sql: Query, params: tuple[object, ...]) -> Rows:
    """``sql``'s rows from a WAL-mode database and its -wal, both as read: SQLite applies a -wal only to a file
    beside it, so the two are written to a folder only root can enter (``mkdtemp``: a fresh name, mode 0700,
    removed after) where no user can swap them, and opened read-only from there."""
    with tempfile.TemporaryDirectory(prefix="agentroster-store-") as private:
        copy = os.path.join(private, "store.sqlite")
        for file, data in ((copy, main), (copy + "-wal", wal)):
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        db = sqlite3.connect(f"file:{quote(copy, safe='/')}?mode=ro", uri=True, timeout=1)
        try:
            return _bounded(db, sql, params)
        finally:
            db.close()


def _workflow(name: object, active: object, nodes_json: object) -> Workflow | None:
    """A workflow with at least one AI agent node, or None."""
    try:
        nodes = json.loads(nodes_json) if isinstance(nodes_json, str) else []
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        return None
    if not isinstance(nodes, list):
        return None
    return _nodes_workflow(name, active, nodes)


def _nodes_workflow(name: object, active: object, nodes: list[object]) -> Workflow | None:
    """A workflow with at least one AI agent node among ``nodes``, or None."""
    agents = 0
    providers: dict[str, None] = {}
    credentials: dict[str, None] = {}
    for node in nodes[:1000]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            continue
        kind = node["type"].removeprefix(LANGCHAIN) if node["type"].startswith(LANGCHAIN) else ""
        if kind in AGENTS:
            agents += 1
        if kind in PROVIDERS:
            providers.setdefault(PROVIDERS[kind], None)
        refs = node.get("credentials")
        if isinstance(refs, dict):
            for key in list(refs)[:20]:
                if isinstance(key, str) and key.isidentifier():
                    credentials.setdefault(key[:60], None)  # the kind's name only: the values are encrypted elsewhere
    if not agents:
        return None
    return (str(name)[:200], bool(active), agents, tuple(providers), tuple(credentials))
