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

The database is the n8n user's file: it is opened read-only only when it is a regular file below that
folder, reached without a symlink and owned by the process's user or root, and the query is bounded in
rows, bytes and SQLite steps.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from typing import TYPE_CHECKING
from urllib.parse import quote

from endpoint.scan import safeio
from endpoint.scan.projects import Found
from signatures.trusted_files import read_capped

if TYPE_CHECKING:
    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import Reads

MAX_WORKFLOWS = 500
MAX_NODES_JSON = 2 << 20  # characters of one workflow's nodes read (and bytes of one exported file)
EXPORT_FILES = 200  # files of an export folder read
MAX_STEPS = 2_000_000  # SQLite virtual-machine steps for the whole query
CONTAINER_DB_BYTES = 32 << 20  # a store in a container is read into memory (see _rows_in_root): at most this
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
    rows = read_rows(folder, "database.sqlite", "SELECT name, active, substr(nodes, 1, ?) FROM workflow_entity LIMIT ?",
                     (MAX_NODES_JSON, MAX_WORKFLOWS), reads, "n8n's database")
    return Found(folder, "n8n", [], [], [w for w in (_workflow(*row) for row in rows) if w is not None])


def read_rows(folder: str, name: str, sql: str, params: tuple[object, ...], reads: Reads,
              what: str) -> list[tuple[object, ...]]:
    """The rows ``sql`` selects from the SQLite database ``name`` in a platform's ``folder``, read-only: only
    when it is a regular file below that folder, owned by the process's user or root; [] otherwise (with
    an error on ``reads`` when it is there but not usable), or when it is not there (not made yet, or the
    platform on another database)."""
    path = os.path.join(folder, name)
    if reads.in_root is not None:  # a container's platform: nothing outside its root is its store
        return _rows_in_root(path, folder, sql, params, reads, what)
    if not os.path.lexists(path):
        return []
    real = os.path.realpath(path)
    if not safeio.is_within(real, os.path.realpath(folder)):
        reads.error(path, "symlink_escape", f"links outside {folder}; not followed")
        return []
    try:
        st = os.stat(real)
    except OSError:
        return []
    if not stat.S_ISREG(st.st_mode):
        reads.error(path, "not_regular", f"{safeio.file_kind(st.st_mode)}, not {what}; not opened")
        return []
    if reads.uid is not None and st.st_uid not in (0, reads.uid):
        reads.error(path, "not_owner", f"owned by uid {st.st_uid}, not by the process's user or root; not used")
        return []
    try:
        return _query(real, sql, params)
    except sqlite3.Error as exc:
        reads.error(path, "unreadable", f"{what}: {exc}")
        return []


def _rows_in_root(path: str, folder: str, sql: str, params: tuple[object, ...], reads: Reads,
                  what: str) -> list[tuple[object, ...]]:
    """``read_rows`` for a platform in a container: the database opened through its root with every link
    resolved inside it (``containers.InRoot``), and SQLite given that open file, never the path again
    (SQLite resolves the links of a path it is given, and a path under /proc/PID/root has the kernel resolve
    the container's absolute links from the host's /): its bytes, at most ``CONTAINER_DB_BYTES``, are read
    from the open file and queried in memory (what sits only in a ``-wal`` file is not seen)."""
    assert reads.in_root is not None
    try:
        fd, st = reads.in_root.open_file(path, boundary=folder, limit=CONTAINER_DB_BYTES)
    except safeio.ReadRefused as exc:
        if exc.code != "not_found":
            reads.error(path, exc.code, exc.detail)
        return []
    try:
        if reads.uid is not None and st.st_uid not in (0, reads.uid):
            reads.error(path, "not_owner", f"owned by uid {st.st_uid}, not by the process's user or root; not used")
            return []
        data = read_capped(fd, CONTAINER_DB_BYTES)
        if data is None:
            reads.error(path, "too_large", f"grew over the {CONTAINER_DB_BYTES}-byte cap while read; not used")
            return []
        return _query_bytes(data, sql, params)
    except OSError as exc:
        reads.error(path, "unreadable", f"{what}: {exc.strerror or exc}")
        return []
    except sqlite3.Error as exc:
        reads.error(path, "unreadable", f"{what}: {exc}")
        return []
    finally:
        os.close(fd)


def _query_bytes(data: bytes, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    """``sql``'s rows from a database image in memory, bounded in SQLite steps as ``_query`` is."""
    db = sqlite3.connect(":memory:")
    try:
        db.deserialize(data)
        steps = [0]

        def too_long() -> int:
            steps[0] += 1000
            return 1 if steps[0] > MAX_STEPS else 0

        db.set_progress_handler(too_long, 1000)
        return list(db.execute(sql, params))
    finally:
        db.close()


def _query(path: str, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    """``sql``'s rows from a read-only connection, the query cut off after ``MAX_STEPS`` SQLite steps."""
    steps = [0]

    def too_long() -> int:
        steps[0] += 1000
        return 1 if steps[0] > MAX_STEPS else 0  # non-zero aborts the query

    last: sqlite3.Error | None = None
    for flags in ("mode=ro", "mode=ro&immutable=1"):  # immutable: a WAL database whose -shm we may not open
        try:
            # quoted: a user's folder named "x?mode=rwc&…" must not become the URI's options
            db = sqlite3.connect(f"file:{quote(path, safe='/')}?{flags}", uri=True, timeout=1)
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            db.set_progress_handler(too_long, 1000)
            return list(db.execute(sql, params))
        except sqlite3.Error as exc:
            last = exc
        finally:
            db.close()
    raise last or sqlite3.DatabaseError("not a database")


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
