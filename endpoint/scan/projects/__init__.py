"""What a Python or Node process really runs: its project, entry module and the frameworks they show.

A team deploys an agent as ``python -m app.worker``, ``uvicorn api.main:app``, ``celery -A tasks worker``,
a console script, ``node dist/index.js`` or ``npm start``: the process's command line names a server, a
queue or a module, and the framework is imported somewhere in the project behind it. ``ProjectReader``
resolves that project from the process's argv, working directory, environment (``PYTHONPATH``,
``VIRTUAL_ENV``) and executable, then reads what it can tell: the framework and LLM SDK imports of the
project's modules (local imports followed a few levels), the frameworks installed in the interpreter's
own site-packages or the project's node_modules, the native extensions the process has mapped, the
model names and statically declared tools in the code it read. A workflow platform (n8n, Flowise,
Langflow) is read through its own store instead: its flows with AI agent nodes (``n8n``, ``flows``); Dify's
api and worker are named from their api folder (``dify``: its apps live in PostgreSQL, not read). A
chrooted process is read below its root as this host reaches it; one in another mount namespace (a
container) through ``/proc/PID/root``, every symlink resolved inside that root (``containers.InRoot``).

Every read is ``endpoint.scan.safeio``'s (regular files only, no symlink out of the folder the file
belongs to, a size cap per file), only of files the process's owner or root owns (and of a virtualenv or
site-packages folder only its owner's or root's; never a file under /proc or /sys, nor one in root's home
for another user's process: ``Reads._off_limits``), of root's files for another user's process only those
that user could read itself (``Reads._vet``, ``Reads.unlisted``: mode bits and the folders on the way, as
the kernel would judge that process's uid and groups), and bounded in files,
bytes and time per process and per scan (``Budget``): a hostile project costs bounded time and yields
at most one error entry. The result is a ``Project`` record (``endpoint.scan.evidence``): names, paths
and versions only, never a file's contents.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar

from endpoint.scan import safeio
from endpoint.scan.containers import Container, InRoot
from endpoint.scan.evidence import ProcessRecord, Project
from endpoint.scan.relevance import LLM_SDK_MODULES, program_name
from signatures.trusted_files import read_capped

if TYPE_CHECKING:
    from signatures import Library

#: per process: files read, bytes read, seconds spent (a slow or huge tree stops here)
PROCESS_FILES = 200
PROCESS_BYTES = 4 << 20
PROCESS_SECONDS = 1.0
#: per scan: what all the processes' projects may read together
SCAN_FILES = 4000
SCAN_BYTES = 48 << 20
#: one source file, one manifest (package.json, METADATA), one directory listing
FILE_BYTES = 256 << 10
MANIFEST_BYTES = 1 << 20
DIR_ENTRIES = 5000
#: what one project's record keeps
MAX_IMPORTS = 64
MAX_MODELS = 12
MAX_TOOLS = 24
MAX_ERRORS = 8

#: where no project's file lies, whoever's process names it (see ``Reads._off_limits``)
PSEUDO_FILESYSTEMS = ("/proc", "/sys")
#: the error of a file (or folder) of root's that the process's own user could not read: not read for it
NOT_READABLE = "not_readable_by_user"
#: folder -> its owner uid, group and mode (``lstat``), None when it is no folder (missing, a link): what
#: whose process may search it is judged from, each folder asked of the kernel once per scan
FolderStats = dict[str, "tuple[int, int, int] | None"]


def _root_home() -> str:
    try:
        import pwd

        home = os.path.realpath(pwd.getpwuid(0).pw_dir or "/root")
    except (ImportError, KeyError):  # Windows has no pwd; a system without a uid 0 entry
        home = "/root"
    return "" if home == os.sep else home  # a root whose home is / has no home of its own to keep others from


#: root's home: its files are root's own, out of reach of other users' processes ("" when it is /)
ROOT_HOME = _root_home()

PYTHONS = ("python",)  # program_name() folds python3.12, pythonw, python.exe into "python"
NODES = ("node", "nodejs")
#: environment variables a project is resolved from (values kept on the record; never credentials)
PROJECT_ENV = ("PYTHONPATH", "VIRTUAL_ENV", "NODE_PATH", "N8N_USER_FOLDER", "DATABASE_PATH", "LANGFLOW_CONFIG_DIR")
#: the LLM SDKs for Node whose imports say which provider a project calls
NODE_SDKS = ("openai", "@anthropic-ai/sdk", "@ai-sdk/openai", "@ai-sdk/anthropic", "@ai-sdk/google",
             "@google/genai", "@mistralai/mistralai", "ollama")

_T = TypeVar("_T")

_MODEL = re.compile(
    r"""["'`](?:[A-Za-z][\w-]{0,20}[:/])?((?:gpt-[0-9o][\w.-]{0,40}|o[1345](?:-mini|-pro)?(?:-20\d\d-\d\d-\d\d)?"""
    r"""|chatgpt-[\w.-]{1,40}|claude-[\w.-]{1,60}|gemini-[\w.-]{1,40}|mistral-[\w.-]{1,40}"""
    r"""|(?:meta-)?llama-?[0-9][\w.-]{0,40}|command-r[\w.-]{0,40}|deepseek-[\w.-]{1,40}|qwen[0-9][\w.:-]{0,40}))["'`]""")
_MODEL_WORDS = ("gpt", "o1", "o3", "o4", "o5", "claude", "gemini", "mistral", "llama", "command-r", "deepseek",
                "qwen")  # one of these in a file, or the model regex is not run over it
_TOOL_DECORATED = re.compile(r"^[ \t]*@(?:[\w.]+\.)?(?:tool|function_tool|kernel_function)\b[^\n]*\n"
                             r"(?:[ \t]*@[^\n]*\n){0,4}[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.M)
_TOOL_CLASS = re.compile(r"^[ \t]*class[ \t]+(\w+)[ \t]*\([^)\n]{0,200}\bBaseTool\b", re.M)  # one line: linear
#: the MCP clients of the frameworks: a project that makes one reaches MCP servers' tools
_MCP_CLIENT = re.compile(r"\b(MCPServerStdio|MCPServerSse|MCPServerStreamableHttp|MultiServerMCPClient|"
                         r"StdioServerParameters|MCPServerAdapter|MCPTools|McpToolSpec|McpWorkbench|"
                         r"experimental_createMCPClient|MCPClient)\s*\(")


class Interests(NamedTuple):
    """What a project's evidence is looked for: framework and SDK modules, and framework packages."""

    modules: frozenset[str]  # Python import names (lower case); a dotted one covers its submodules
    pypi: frozenset[str]  # PEP 503 names
    npm: frozenset[str]  # npm package names (lower case)


def interests_of(lib: Library) -> Interests:
    """The enterprise signatures' imports and packages, and the LLM SDKs (their imports name providers)."""
    from signatures.matching import pep503

    modules = {m.lower() for m in LLM_SDK_MODULES} | {m.replace("-", "_") for m in NODE_SDKS if "/" not in m}
    pypi: set[str] = set()
    npm: set[str] = {n.lower() for n in NODE_SDKS}
    for sig in lib.signatures:
        if sig.type != "enterprise":
            continue
        modules.update(m.lower() for m in sig.process.script_imports)
        pypi.update(pep503(n) for n in sig.packages.pypi)
        npm.update(n.lower() for n in sig.packages.npm)
    return Interests(frozenset(modules), frozenset(pypi), frozenset(npm))


def interesting_module(module: str, modules: frozenset[str]) -> bool:
    """Whether ``module`` or a package above it is one of ``modules`` (``llama_index.core`` for ``llama_index``)."""
    parts = module.lower().split(".")
    return any(".".join(parts[:n]) in modules for n in range(len(parts), 0, -1))


def process_groups(pid: int, uid: int) -> frozenset[int] | None:
    """The gids process ``pid`` acts with: the four of its ``Gid:`` line (real, effective, saved, filesystem:
    it may take any of them up again) and its supplementary ``Groups:``, from /proc/PID/status; None when
    that is no live process whose real uid is ``uid`` (gone, its pid taken by another, a record of none)."""
    try:
        with open(f"{PROC}/{pid}/status", "rb") as fh:  # the kernel's file: a pid is a number, no user's path
            data = fh.read(64 << 10)
    except OSError:
        return None
    fields: dict[bytes, list[bytes]] = {}
    for line in data.splitlines():
        key, colon, value = line.partition(b":")
        if colon and key in (b"Uid", b"Gid", b"Groups"):
            fields[key] = value.split()
    try:
        if int(fields[b"Uid"][0]) != uid:
            return None
        return frozenset(int(gid) for gid in (*fields[b"Gid"], *fields.get(b"Groups", [])))
    except (KeyError, IndexError, ValueError):
        return None


def _opened_folder(fd: int) -> str:
    """Where the folder open as ``fd`` lies, as the kernel names it (Linux); "" when it cannot tell."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def account_groups(uid: int) -> frozenset[int]:
    """The groups of ``uid``'s account (its primary group and those the group database lists it in): what a
    new login of that user acts with; none for a uid with no account (then only others' bits let it read)."""
    try:
        import pwd

        entry = pwd.getpwuid(uid)
        return frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except (ImportError, KeyError, OSError):
        return frozenset()


class Budget:
    """What one scan may still read from projects: files and bytes (one per scan, shared by processes)."""

    def __init__(self, files: int = SCAN_FILES, bytes_: int = SCAN_BYTES) -> None:
        self.files = files
        self.bytes = bytes_


class Reads:
    """The reads of one process's project: safe, owned by its user or root, counted against both budgets.

    What could not be read is kept as (where, code, detail), at most ``MAX_ERRORS`` of them; the text
    read is scanned for model names and tools as it comes.
    """

    def __init__(self, scan: Budget, uid: int | None, *, files: int = PROCESS_FILES, bytes_: int = PROCESS_BYTES,
                 seconds: float = PROCESS_SECONDS, resolver: safeio.Resolver | None = None,
                 in_root: InRoot | None = None, pid: int | None = None, folders: FolderStats | None = None,
                 top: str = "") -> None:
        self.scan = scan
        self.in_root = in_root  # a container's root: its files are opened through it, links resolved inside
        self.uid = uid
        self.pid = pid  # whose groups (/proc/PID/status) say which of root's files its user could read
        self.folders: FolderStats = {} if folders is None else folders  # the reader's, shared by the scan
        self._closed: dict[str, str] = {}  # folder -> ``closed_folder``'s answer for this process
        # a chrooted process's root, or a container's (as this process reaches it): the folders above it are
        # not on that process's way to any file
        self.top = top or (in_root.prefix if in_root is not None else "")
        self._groups: frozenset[int] | None = None
        self.files = files
        self.bytes = bytes_
        self.deadline = time.monotonic() + seconds
        self.resolver = resolver
        self.errors: list[tuple[str, str, str]] = []
        self.error_count = 0
        self.models: dict[str, None] = {}
        self.tools: dict[str, None] = {}
        self._spent = False

    def error(self, where: str, code: str, detail: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((where, code, detail))

    def left(self) -> bool:
        """Whether another file may be read; the first time not, one error says which bound was hit."""
        if self.files > 0 and self.bytes > 0 and self.scan.files > 0 and self.scan.bytes > 0 \
                and time.monotonic() < self.deadline:
            return True
        if not self._spent:
            self._spent = True
            which = ("the scan's" if self.scan.files <= 0 or self.scan.bytes <= 0 else
                     "its time" if time.monotonic() >= self.deadline else "its")
            self.error("project", "budget", f"{which} budget of files, bytes or time for projects is spent; "
                                            "the rest of the project was not read")
        return False

    def in_time(self) -> bool:
        """Whether the process's time is not yet spent (for work between reads: the next read says so)."""
        return time.monotonic() < self.deadline

    def text(self, path: str, boundary: str, *, limit: int = FILE_BYTES, code: bool = True) -> str | None:
        """The text of ``path`` below ``boundary``, or None (not there, refused, out of budget, not its owner's)."""
        if not self.left():
            return None
        try:
            if self.in_root is not None:  # a container's: nothing outside its root is its file
                data, owner = self._bytes_owned(path, boundary, limit)
                text = safeio.decode_text(data)
            else:
                self._check_place(os.path.normpath(path))
                text, owner = safeio.read_text_owned(path, boundary=boundary, limit=limit, resolver=self.resolver,
                                                     refuse=self._off_limits, vet=self._vet)
        except safeio.ReadRefused as exc:
            if exc.code != "not_found":
                self.error(path, exc.code, exc.detail)
            self.files -= 1
            self.scan.files -= 1
            return None
        size = len(text)
        self.files -= 1
        self.scan.files -= 1
        self.bytes -= size
        self.scan.bytes -= size
        if self.uid is not None and owner not in (0, self.uid):
            self.error(path, "not_owner", f"owned by uid {owner}, not by the process's user or root; not used")
            return None
        if code:
            self.notice(text)
        return text

    def data(self, path: str, boundary: str, *, limit: int, too_large: str = "") -> bytes | None:
        """The bytes of ``path`` below ``boundary``, read once through one descriptor (a platform's SQLite
        store, then queried from that copy, never opened again by name), or None as ``text``. Its bytes are
        charged to the scan's budget, so at most what is left of it is read, not to the process's: a store
        is what a platform's process is read for, and larger than the few MiB a project's sources may be;
        ``too_large`` is what the error says to do about a file over ``limit``."""
        if not self.left():
            return None
        cap = min(limit, self.scan.bytes)
        try:
            data, owner = self._bytes_owned(path, boundary, cap)
        except safeio.ReadRefused as exc:
            if exc.code == "too_large" and cap < limit:
                exc = safeio.ReadRefused("budget", f"larger than the {cap} bytes left of the scan's budget for "
                                                   "projects; not read")
            elif exc.code == "too_large" and too_large:
                exc = safeio.ReadRefused("too_large", f"{exc.detail}; {too_large}")
            if exc.code != "not_found":
                self.error(path, exc.code, exc.detail)
            self.files -= 1
            self.scan.files -= 1
            return None
        self.files -= 1
        self.scan.files -= 1
        self.scan.bytes -= len(data)
        if self.uid is not None and owner not in (0, self.uid):
            self.error(path, "not_owner", f"owned by uid {owner}, not by the process's user or root; not used")
            return None
        return data

    def _bytes_owned(self, path: str, boundary: str, limit: int) -> tuple[bytes, int]:
        if self.in_root is None:
            self._check_place(os.path.normpath(path))
            return safeio.read_bytes_owned(path, boundary=boundary, limit=limit, resolver=self.resolver,
                                           refuse=self._off_limits, vet=self._vet)
        fd, st = self.in_root.open_file(path, boundary=boundary, limit=limit)
        try:
            self._vet_inside(path, st)
            data = read_capped(fd, limit)
        except OSError as exc:
            raise safeio.ReadRefused("unreadable", os.strerror(exc.errno or errno.EIO)) from exc
        finally:
            os.close(fd)
        if data is None:
            raise safeio.ReadRefused("too_large", f"grew over the {limit}-byte cap while read")
        return data, st.st_uid

    def _off_limits(self, path: str) -> tuple[str, str] | None:
        """Why no process's project may hold ``path`` (a host path), or None. Root's own files are any
        process's to use (a system site-packages, a service deployed by root), but not the kernel's files
        under /proc and /sys (a path through /proc/PID/cwd lands in another process's folder), nor, for a
        process of another user, those in root's home: that user cannot read them, and a PYTHONPATH, an
        --app-dir or a script path naming them must not put root's code in its user's sighting."""
        if any(safeio.is_within(path, pseudo) for pseudo in PSEUDO_FILESYSTEMS):
            return "pseudo_file", "a file of the kernel's (/proc, /sys), not of a project; not read"
        if self.uid not in (None, 0) and ROOT_HOME and safeio.is_within(path, ROOT_HOME):
            return "root_only", (f"in root's home {ROOT_HOME}, which a process of uid {self.uid} cannot read; "
                                 "not read for it")
        return None

    def _judged(self) -> bool:
        """Whether what this process's user could read must be asked: not for root's process nor one of no
        known user, nor where mode bits say nothing (Windows)."""
        return self.uid not in (None, 0) and os.name == "posix"

    def groups(self) -> frozenset[int]:
        """The groups this process acts with (``process_groups``), else those of its user's account."""
        if self._groups is None:
            uid = self.uid if self.uid is not None else 0
            found = process_groups(self.pid, uid) if self.pid is not None else None
            self._groups = found if found is not None else account_groups(uid)
        return self._groups

    def _vet(self, opened: str, st: os.stat_result) -> tuple[str, str] | None:
        """Why a file of root's, open at ``opened`` with ``st`` its fstat, is not to be read for this
        process: its user could not read it (mode, or a folder on the way it may not search); None when it
        could, or the file is the user's own (another user's is refused as ``not_owner`` once read). Asked
        of the open file, so that no file swapped in after a check is judged by another's mode."""
        uid = self.uid
        if uid is None or not self._judged() or st.st_uid != 0:
            return None
        if not self.grants(st.st_uid, st.st_gid, st.st_mode, 4):
            return NOT_READABLE, (f"mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}, group gid "
                                  f"{st.st_gid}: the process's user (uid {uid}) could not read it; not read for it")
        closed = self.closed_folder(os.path.dirname(opened))
        if closed:
            return NOT_READABLE, (f"below {closed}, which the process's user (uid {uid}) may not search; "
                                  "not read for it")
        return None

    def _vet_inside(self, path: str, st: os.stat_result) -> None:
        """``_vet`` for a file opened through a container's root (``st`` its fstat): its folders are judged
        where the file lies inside that root, from the root down. Raises ``safeio.ReadRefused``."""
        if self.in_root is None or not self._judged() or st.st_uid != 0:
            return
        try:
            opened = self.in_root.resolve(path)
        except OSError as exc:
            raise safeio.ReadRefused("unreadable", os.strerror(exc.errno or errno.EIO)) from exc
        refused = self._vet(opened, st)
        if refused is not None:
            raise safeio.ReadRefused(*refused)

    def grants(self, owner: int, gid: int, mode: int, bits: int) -> bool:
        """Whether a file of ``owner`` and group ``gid`` with ``mode`` grants ``bits`` (r=4, x=1, or both) to
        this process: its user's own always (it may change the mode), else the group's or others' bits,
        whichever class the kernel puts the process in (only that one: a group denied what others may do is
        denied it); its groups are read only when the two classes differ. POSIX ACLs are not asked: a file
        only an ACL opens to the user counts as closed to it, the safe way to be wrong."""
        if owner == self.uid:
            return True
        by_group, by_others = (mode >> 3) & bits == bits, mode & bits == bits
        if by_group == by_others:
            return by_others
        return by_group if gid in self.groups() else by_others

    def closed_folder(self, folder: str) -> str:
        """The first folder from / (or a chrooted process's root) down to ``folder``, a resolved path, that this
        process's user may not search (lstat: a link there now is no folder it may pass); "" when none is.
        Each folder's lstat is kept in ``folders`` for the scan, each answer for the process."""
        below: list[str] = []
        closed = self._closed.get(folder)
        while closed is None:  # climb to a folder already judged (or the top), then judge the way down
            parent = os.path.dirname(folder)
            below.append(folder)
            if parent == folder or folder == self.top:
                closed = ""
                break
            folder = parent
            closed = self._closed.get(folder)
        for path in reversed(below):
            if not closed and path != self.top:
                facts = self._folder_stat(path)
                if facts is None or not self.grants(*facts, 1):
                    closed = path
            self._closed[path] = closed
        return closed

    def _folder_stat(self, folder: str) -> tuple[int, int, int] | None:
        """(owner uid, group, mode) of ``folder`` by ``lstat``, None when it is no folder; once per scan."""
        if folder in self.folders:
            return self.folders[folder]
        try:
            st = os.lstat(folder)
        except OSError:
            facts = None
        else:
            facts = (st.st_uid, st.st_gid, st.st_mode) if stat.S_ISDIR(st.st_mode) else None
        self.folders[folder] = facts
        return facts

    def unlisted(self, folder: str) -> bool:
        """Whether ``folder`` is root's and its process's user could not list it itself (no read on it, or a
        folder on the way it may not search): then one error says so, and none of its names are used. A
        container's folders are listed as they are (names only: what is read from them is judged as any file)."""
        if not self._judged() or self.in_root is not None:
            return False
        try:  # the scan's resolver: each folder above it is resolved once per scan
            real, own = self.resolver.realpath(folder) if self.resolver is not None else (os.path.realpath(folder), None)
            st = own if own is not None else os.lstat(real)
        except (OSError, RuntimeError):  # RuntimeError: a link loop, as older realpath reports it
            return False  # not there: nothing is listed anyway
        return self._closed_to_user(folder, real, st)

    def _closed_to_user(self, folder: str, real: str, st: os.stat_result) -> bool:
        """``unlisted`` for the folder ``folder`` found at ``real`` with ``st`` its (f)stat."""
        if st.st_uid != 0 or not stat.S_ISDIR(st.st_mode):
            return False  # the user's own (or another's: ``foreign`` says so) or no folder: listing finds nothing
        uid = self.uid if self.uid is not None else 0
        if not self.grants(st.st_uid, st.st_gid, st.st_mode, 5):
            closed = real
        else:
            closed = self.closed_folder(os.path.dirname(real))
        if closed == real:
            self.error(folder, NOT_READABLE, f"mode {stat.S_IMODE(st.st_mode):04o}, owner uid 0, group gid "
                                             f"{st.st_gid}: the process's user (uid {uid}) could not list it; "
                                             "its names are not used for it")
        elif closed:
            self.error(folder, NOT_READABLE, f"below {closed}, which the process's user (uid {uid}) may not "
                                             "search; its names are not used for it")
        return bool(closed)

    def _check_place(self, path: str) -> None:
        refused = self._off_limits(path)
        if refused is not None:
            raise safeio.ReadRefused(*refused)

    def off_limits(self, folder: str) -> bool:
        """Whether ``folder`` (as named, and where its links lead) lies where no file is this process's
        (``_off_limits``): then one error says so, before anything in it is listed or looked for."""
        if self.in_root is not None:
            return False  # a container's paths are its own, resolved inside its root
        refused = self._off_limits(os.path.normpath(folder)) or self._off_limits(os.path.realpath(folder))
        if refused is not None:
            self.error(folder, *refused)
        return refused is not None

    def foreign(self, folder: str, what: str) -> bool:
        """Whether ``folder`` (where its links lead) belongs to neither the process's user nor root, as a
        virtualenv named by another user's ``VIRTUAL_ENV`` or found through a ``HOME`` the process set to
        someone else's does: then one error says so, and nothing in it may be used for this process."""
        if self.off_limits(folder):
            return True
        if self.uid is None:
            return False
        try:
            where = self.in_root.resolve(folder) if self.in_root is not None else folder
            owner = os.stat(where).st_uid
        except (OSError, safeio.ReadRefused):
            return False  # not there: nothing in it is read anyway
        if owner in (0, self.uid):
            return False
        self.error(folder, "not_owner", f"{what} owned by uid {owner}, not by the process's user or root; "
                                        "its packages are not listed for this process")
        return True

    def listing(self, folder: str) -> list[str]:
        """The names in ``folder`` (at most ``DIR_ENTRIES``); [] when it cannot be listed."""
        if self.in_root is not None:
            names = self.in_root.listing(folder, DIR_ENTRIES)
            if len(names) >= DIR_ENTRIES:
                self.error(folder, "too_many_entries", f"over {DIR_ENTRIES} entries; the rest not listed")
            return names
        names = []
        fd = -1
        try:
            if self._judged():  # judged on the folder opened (no swap after the check), listed through it
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC)
                if self._closed_to_user(folder, _opened_folder(fd) or os.path.realpath(folder), os.fstat(fd)):
                    return names
            with os.scandir(fd if fd >= 0 else folder) as entries:
                for entry in entries:
                    names.append(entry.name)
                    if len(names) >= DIR_ENTRIES:
                        self.error(folder, "too_many_entries", f"over {DIR_ENTRIES} entries; the rest not listed")
                        break
        except OSError:
            return []
        finally:
            if fd >= 0:
                os.close(fd)
        return names

    def isfile(self, path: str) -> bool:
        """Whether ``path`` is a regular file as the process sees it (a container's: asked inside its root)."""
        return self.in_root.kind(path) == "file" if self.in_root is not None else os.path.isfile(path)

    def isdir(self, path: str) -> bool:
        """Whether ``path`` is a folder as the process sees it (a container's: asked inside its root)."""
        return self.in_root.kind(path) == "dir" if self.in_root is not None else os.path.isdir(path)

    def islink(self, path: str) -> bool:
        """Whether ``path`` itself is a symlink as the process sees it."""
        return self.in_root.kind(path, follow=False) == "link" if self.in_root is not None else os.path.islink(path)

    def notice(self, text: str) -> None:
        """Note the model names and statically declared tools in ``text`` (code read, or a notebook's cells)."""
        if len(self.models) < MAX_MODELS and any(word in text for word in _MODEL_WORDS):
            for match in _MODEL.finditer(text):
                self.models.setdefault(match.group(1), None)
                if len(self.models) >= MAX_MODELS:
                    break
        if len(self.tools) < MAX_TOOLS and ("tool" in text or "BaseTool" in text or "kernel_function" in text):
            for regex in (_TOOL_DECORATED, _TOOL_CLASS):
                for match in regex.finditer(text):
                    self.tools.setdefault(match.group(1), None)
                    if len(self.tools) >= MAX_TOOLS:
                        return
        if len(self.tools) < MAX_TOOLS and ("MCP" in text or "Mcp" in text):
            for match in _MCP_CLIENT.finditer(text):
                self.tools.setdefault(f"MCP servers ({match.group(1)})", None)
                if len(self.tools) >= MAX_TOOLS:
                    return


class Found(NamedTuple):
    """What a language's resolver found, before it becomes a ``Project``."""

    root: str
    entry: str
    imports: list[tuple[str, str]]
    packages: list[tuple[str, str, str, str]]
    workflows: Sequence[tuple[str, bool, int, tuple[str, ...], tuple[str, ...]]] = ()
    platform: str = ""  # the signature id of a platform whose data this is ("n8n")


class ProjectReader:
    """Resolves the projects of one scan's processes (make one per scan: it holds the scan's budget
    and remembers each site-packages folder's listing)."""

    def __init__(self, interests: Interests, *, budget: Budget | None = None, maps: bool = True,
                 cwd_of: Callable[[int], str] | None = None, enabled: bool = True, proc_roots: bool = True) -> None:
        self.enabled = enabled  # off: no process gets a project (a benchmark's baseline)
        self.proc_roots = proc_roots and os.path.isdir(f"{PROC}/self")  # off: records that are no live process
        self.interests = interests
        self.budget = budget or Budget()
        self.maps = maps
        self.cwd_of = cwd_of
        self.resolver = safeio.Resolver()
        # (site-packages folder, the reading process's uid) -> what python.py read of it: one user's .pth
        # lines and METADATA are never another's (nor root's)
        self.sites: dict[tuple[str, int | None], object] = {}
        # folders every process of a kind lists (lib/, node_modules): names only, no file's content, and
        # whatever is found through them is read and owner-checked per process
        self.listings: dict[str, list[str]] = {}
        self.containers: dict[tuple[str, str, int | None], Container] = {}  # each container's metadata, read once
        self.folders: FolderStats = {}  # each folder's owner, group and mode, for whose process may search it

    def read(self, record: ProcessRecord) -> Project | None:
        """The project ``record`` runs, or None when it runs no Python or Node project we can name."""
        kind = language(record) if self.enabled else None
        if kind is None:
            return None
        cwd = record.cwd
        if not cwd and self.cwd_of is not None:
            try:
                cwd = record.cwd = self.cwd_of(record.pid)
            except OSError:
                cwd = ""
        inside = root_of(record.pid) if self.proc_roots else ""
        walled: InRoot | None = None
        if inside is None:  # another mount namespace (a container): read through its root, links resolved there
            walled = InRoot(record.pid)
            inside = walled.prefix
        if inside:
            record, cwd = in_root(record, inside), cwd if safeio.is_within(cwd, inside) else inside + cwd
        reads = Reads(self.budget, record.uid, resolver=self.resolver, in_root=walled, pid=record.pid,
                      folders=self.folders, top=inside if walled is None else "")
        from endpoint.scan.projects import flows, n8n

        platform = ("n8n" if kind == "node" and n8n.runs_n8n(record) else
                    "flowise" if kind == "node" and flows.runs_flowise(record) else
                    "langflow" if kind == "python" and flows.runs_langflow(record) else "")
        if platform:  # a workflow platform: its flows, from its own store
            found = (n8n.resolve(record, reads, cwd) if platform == "n8n" else
                     flows.flowise(record, reads) if platform == "flowise" else flows.langflow(record, reads, self))
            if found is not None:
                found = found._replace(platform=platform)
        elif kind == "python":
            from endpoint.scan.projects import dify, python

            found = dify.resolve(record, cwd, reads)  # Dify's api and worker: gunicorn app:app, celery -A app.celery
            if found is not None:
                found = found._replace(platform="dify")
            else:
                found = python.resolve(record, cwd, self, reads)
        else:
            from endpoint.scan.projects import node

            found = node.resolve(record, cwd, self, reads)
        if found is None:
            return None
        native: tuple[tuple[str, str], ...] = ()
        if self.maps and (found.imports or found.packages):  # the kernel writes maps out slowly: only for a hint
            from endpoint.scan.projects import maps

            native = maps.native_libraries(record.pid)
        errors = list(reads.errors)
        if reads.error_count > len(errors):
            errors.append(("project", "more_errors", f"{reads.error_count - len(errors)} more not listed"))
        project = Project(kind, found.root, found.entry, tuple(_unique(found.imports)[:MAX_IMPORTS]),
                          tuple(_unique(found.packages)), native, tuple(reads.models), tuple(reads.tools),
                          tuple(errors), tuple(found.workflows), found.platform)
        return project if walled is None else as_inside(project, walled.prefix)


PROC = "/proc"


def root_of(pid: int) -> str | None:
    """Where the process's root directory is, as this process sees it: "" when it is ours, the folder when
    it is chrooted into one we can reach, None when it lies in another mount namespace (a container) or
    cannot be told."""
    try:
        theirs = os.stat(f"{PROC}/{pid}/root")
        ours = os.stat(f"{PROC}/self/root")
    except OSError:
        return ""  # gone, or not ours to look at: its paths are taken as they are
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        return ""
    try:
        link = os.readlink(f"{PROC}/{pid}/root")
        here = os.stat(link)
    except OSError:
        return None
    if link != "/" and os.path.isabs(link) and (here.st_dev, here.st_ino) == (theirs.st_dev, theirs.st_ino):
        return link.rstrip("/")
    return None


def in_root(record: ProcessRecord, inside: str) -> ProcessRecord:
    """A copy of ``record`` whose absolute paths (argv, VIRTUAL_ENV, PYTHONPATH, N8N_USER_FOLDER) are those of a
    process chrooted into ``inside``, as this process reaches them."""

    def host(path: str) -> str:
        return inside + path if os.path.isabs(path) and not safeio.is_within(path, inside) else path

    env = dict(record.env_values)
    for name in ("VIRTUAL_ENV", "N8N_USER_FOLDER", "HOME"):
        if name in env:
            env[name] = host(env[name])
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = os.pathsep.join(host(p) for p in env["PYTHONPATH"].split(os.pathsep))
    return ProcessRecord(record.pid, record.ppid, record.name, host(record.exe) if record.exe else record.exe,
                         [_host_arg(a, host) for a in record.cmdline], record.user, record.uid,
                         record.create_time, record.env_keys, env, record.credentials, record.cwd,
                         container=record.container)


def _host_arg(arg: str, host: Callable[[str], str]) -> str:
    """An argument with its absolute path as this process reaches it: ``/srv/x`` and ``--output=/srv/x``."""
    if arg.startswith("/"):
        return host(arg)
    name, eq, value = arg.partition("=")
    return f"{name}={host(value)}" if eq and name.startswith("-") and value.startswith("/") else arg


def as_inside(project: Project, prefix: str) -> Project:
    """``project`` with the paths read through a container's root (``/proc/PID/root/app``) named as the
    container names them (``/app``): the prefix is this scan's way in, not where the project is."""

    def inner(path: str) -> str:
        return (path[len(prefix):] or "/") if path == prefix or path.startswith(prefix + "/") else path

    return project._replace(
        root=inner(project.root), entry=inner(project.entry),
        imports=tuple((m, inner(f)) for m, f in project.imports),
        packages=tuple((e, n, v, inner(w)) for e, n, v, w in project.packages),
        errors=tuple((inner(w), c, d.replace(prefix + "/", "/")) for w, c, d in project.errors))


def language(record: ProcessRecord) -> Literal["python", "node"] | None:
    """"python" or "node" when the process is that interpreter: by its executable where it can be read
    (argv[0] is whatever the parent chose: a ``sleep`` named "python3" runs no project), else by argv[0]
    and its name."""
    if record.exe:
        names = {program_name(record.exe)}
    else:
        names = {program_name(record.name)}
        if record.cmdline:
            names.add(program_name(record.cmdline[0].split(" ", 1)[0]))
    if names & set(PYTHONS):
        return "python"
    if names & set(NODES) or names & {"npm", "npx", "tsx"}:
        return "node"
    return None


def nearest(folder: str, names: Iterable[str], *, levels: int = 8,
            isfile: Callable[[str], bool] = os.path.isfile) -> str | None:
    """The nearest folder at or above ``folder`` (``levels`` at most) that holds one of ``names``; ``isfile``
    is the process's own view of a file (``Reads.isfile``: a container's is asked inside its root)."""
    names = tuple(names)
    for _ in range(levels):
        if any(isfile(os.path.join(folder, n)) for n in names):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return None


def _unique(items: Iterable[_T]) -> list[_T]:
    return list(dict.fromkeys(items))


_default: tuple[Interests] | None = None


def default_reader(cwd_of: Callable[[int], str] | None = None) -> ProjectReader:
    """A reader with the shipped signatures' interests (for a caller that reads one process at a time)."""
    global _default
    if _default is None:
        import signatures

        _default = (interests_of(signatures.load()),)
    return ProjectReader(_default[0], cwd_of=cwd_of)
