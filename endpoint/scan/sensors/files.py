"""The file sensor: agent configs, app bundles, IDE extensions and agent packages in every home.

Three scopes of config are read: machine-wide (managed) paths, each user's own, and each project's —
projects found through the clients' own records (``projects`` in ~/.claude.json, VS Code-family
workspaceStorage, opencode's project list) and a bounded walk of each home. Discovery is static:
nothing is started to learn about it, and every file goes through ``endpoint.scan.safeio``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal, NamedTuple, cast
from urllib.parse import unquote, urlsplit

from endpoint.scan import credentials, safeio
from endpoint.scan.evidence import ArtifactRecord, ConfigRecord, McpServerConfig, ScanError
from endpoint.scan.faults import internal_error, isolated, isolated_records
from endpoint.scan.homes import (
    Home,
    display_path,
    existing,
    expand_home_template,
    expand_machine_template,
    find_homes,
    is_home_template,
    template_platforms,
    trusted_policy_template,
)

if TYPE_CHECKING:
    from endpoint.scan.parsers import ParsedConfig
    from signatures import Library
    from signatures.runtime import FileMatcher, Signature

Record = ConfigRecord | ArtifactRecord | ScanError
Scope = Literal["managed", "user", "project"]
CLAUDE_CODE = "claude-code"  # whose organisation policy (managed-mcp.json, allowed/deniedMcpServers) is applied  # a FileMatcher's scope, as the pack schema allows

# Directories a project walk never enters: dependency trees, VCS data, caches, app data.
SKIP_DIRS = frozenset({
    "node_modules", ".git", ".hg", ".svn", "__pycache__", ".cache", ".npm", ".nvm", ".pyenv", ".rustup",
    ".cargo", ".venv", "venv", "site-packages", "Library", "AppData", ".local", "snap", ".Trash", "go",
    ".gradle", ".m2", "target", "dist", "build", ".next", "vendor", ".tox", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".vscode-server", ".docker", ".bun", ".deno", "Applications", "Music", "Pictures",
    "Movies", "Videos", ".steam", ".mozilla", ".thunderbird",
})
WALK_MAX_DEPTH = 4  # home/a/b/c/d: deep enough for ~/src/org/repo
WALK_MAX_ENTRIES = 20_000  # per home: a huge home is walked partly, and the scan says so

_EDITOR_USER_DIRS = ("Code", "Code - Insiders", "Cursor", "Windsurf", "VSCodium", "Kiro", "Antigravity", "Trae")
_EXTENSION_DIRS = (".vscode", ".vscode-insiders", ".vscode-server", ".vscode-oss", ".cursor", ".windsurf",
                   ".kiro", ".antigravity", ".trae", ".cursor-server", ".windsurf-server")
_EXT_NAME = re.compile(r"^(?P<id>[A-Za-z0-9][\w-]*\.[\w.-]+?)-(?P<version>\d+\.\d+[\w.+-]*)$")
_SITE_PACKAGES_MACHINE = ("/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages",
                          "/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
                          "/opt/homebrew/lib/python3*/site-packages", "/opt/*/lib/python3*/site-packages")
_SITE_PACKAGES_HOME = ("~/.local/lib/python3*/site-packages", "~/.local/share/pipx/venvs/*/lib/python3*/site-packages",
                       "~/.local/pipx/venvs/*/lib/python3*/site-packages",
                       "~/.local/share/uv/tools/*/lib/python3*/site-packages",
                       "~/.pyenv/versions/*/lib/python3*/site-packages",
                       "~/Library/Python/3*/lib/python/site-packages",
                       "%APPDATA%/Python/Python3*/site-packages", "%LOCALAPPDATA%/Programs/Python/Python3*/Lib/site-packages")
_NPM_MACHINE = ("/usr/lib/node_modules", "/usr/local/lib/node_modules", "/opt/homebrew/lib/node_modules")
_NPM_HOME = ("~/.npm-global/lib/node_modules", "~/.nvm/versions/node/*/lib/node_modules",
             "~/.local/lib/node_modules", "~/.local/share/pnpm/global/*/node_modules",
             "~/.bun/install/global/node_modules", "~/.volta/tools/image/packages/*/lib/node_modules",
             "%APPDATA%/npm/node_modules", "~/.npm/lib/node_modules")


class FileScan:
    """One pass over the files of a machine (or a tree standing for one)."""

    def __init__(self, lib: Library, root: str, walk_projects: bool = True) -> None:
        from endpoint.scan.sensors.processes import remembering

        self.lib = lib
        self.root = root
        self.walk_projects = walk_projects
        self.parse_cache: dict[str, ParsedConfig | ScanError] = {}
        self.claimed: set[tuple[str, str]] = set()  # (real path, signature id)
        self.owners: dict[str, int] = {}  # real path -> the uid that owned the file when it was read
        self.homes: dict[str, Home] = {}  # real path -> every home this scan has met
        self.uid_users: dict[int, set[str]] = {}  # a home owner's uid -> the users of the homes it owns
        self.uid_names: dict[int, str | None] = {}  # uid -> this machine's name for it (live scans)
        self._found_homes = False
        self.fingerprint_key = credentials.fingerprint_key()
        self.listings: dict[str, frozenset[str] | None] = {}  # folder -> lower-cased names
        self.reals: dict[str, str] = {}  # path -> os.path.realpath(path)
        self.resolver = safeio.Resolver()  # the folders files are read from
        self._templates: _Templates | None = None
        self._claude_machine: tuple[list[object], bool] | None = None
        self._classify = remembering(self.lib.credential_kind)  # homes hold many copies of the same values

    @property
    def templates(self) -> _Templates:
        if self._templates is None:
            self._templates = _Templates.of(self.lib)
        return self._templates

    def _listing(self, directory: str) -> frozenset[str] | None:
        """The lower-cased names in a folder, read once per scan; None when it cannot be listed."""
        if directory in self.listings:
            return self.listings[directory]
        names = self.listings[directory] = _names(directory)
        return names

    def _real(self, path: str) -> str:
        """``os.path.realpath(path)``, each folder on the way resolved once per scan rather than per file."""
        found = self.reals.get(path)
        if found is not None:
            return found
        head, tail = os.path.split(path)
        if not path.startswith("/") or not tail or tail in (".", ".."):
            real = os.path.realpath(path)
        else:
            try:
                link = stat.S_ISLNK(os.lstat(path).st_mode)
            except OSError:
                link = False  # missing: realpath keeps such a component as it is
            real = os.path.realpath(path) if link else os.path.join(self._real(head), tail)
        self.reals[path] = real
        return real

    def _existing(self, pattern: str, prefix: str, parts: list[str] | None = None) -> list[str]:
        """``existing(pattern, prefix)``, skipped when a directory on the way is already known not to hold it.

        Hundreds of templates are tried in every home and project, and most name a folder the home
        lacks: one listing of each folder on the way answers them all, where a stat per path would not.
        ``parts``: the components of ``pattern`` below ``prefix``, when the caller has them already.
        """
        directory = prefix or "/"
        for part in pattern[len(prefix):].strip("/").split("/") if parts is None else parts:
            if "*" in part or not part:
                break
            names = self._listing(directory)
            if names is None:
                break  # not listable (search-only permission): let existing() look
            if part.lower() not in names:
                return []
            directory = f"{directory.rstrip('/')}/{part}"
        return existing(pattern, prefix)

    # -- entry points ----------------------------------------------------------------------------
    def run(self, homes: Iterable[Home]) -> Iterator[Record]:
        homes = list(homes)
        for home in homes:  # all of them first: whose file or folder a path is depends on every home
            self._know(home)
        self._know_all()
        yield from self.machine()
        for home in homes:
            yield from self.home(home)

    def machine(self) -> Iterator[Record]:
        """The machine-wide records; a bug that raises ends only them, as one ``internal`` error."""
        yield from isolated_records(self._machine(), "/")

    def home(self, home: Home) -> Iterator[Record]:
        """One home's records; a bug that raises ends only this home's, as one ``internal`` error (each
        file, entry and project is isolated further down: this is the last net)."""
        self._know(home)
        self._know_all()  # a rescan of one home (the daemon's) still knows every other
        yield from isolated_records(self._home(home), home.display)

    def _machine(self) -> Iterator[Record]:
        root = self.root
        for sig, fm in self.lib.file_templates:
            if fm.scope == "managed" and not is_home_template(fm.path):
                for pattern in expand_machine_template(fm.path, root):
                    for path in existing(pattern, root.rstrip("/")):  # few, under big folders: no listing
                        for record in self._config(path, sig, fm, user="", boundary=root):
                            if isinstance(record, ConfigRecord) and sig.id == CLAUDE_CODE and record.mcp_servers:
                                record.mcp_servers = self._claude_policed(record.mcp_servers, None, None, "",
                                                                          managed_file=True)
                            yield record
        for sig, template in self.lib.app_templates:
            if not is_home_template(template) and not template.startswith("{"):
                for pattern in expand_machine_template(template, root):
                    for path in existing(pattern, root.rstrip("/")):
                        yield ArtifactRecord("app", sig.id, path, display_path(path, root), "")
        yield from self._packages([p for t in _SITE_PACKAGES_MACHINE for p in expand_machine_template(t, root)],
                                  [p for t in _NPM_MACHINE for p in expand_machine_template(t, root)],
                                  user="", prefix=root.rstrip("/"))

    def _home(self, home: Home) -> Iterator[Record]:
        projects: dict[str, str | None] = {}  # project folder -> the file that recorded it (None: walked)
        names = self._listing(home.path)
        for sig, fm, platforms, first, below, parts in self.templates.user:
            if not platforms & home.platforms or not _may_hold(names, first):
                continue
            for path in self._existing(home.path + below, home.path, parts):
                for record in self._config(path, sig, fm, user=home.user, boundary=home.path):
                    if isinstance(record, ConfigRecord) and fm.dialect == "claude_code" and record.mcp_servers:
                        record.mcp_servers = self._claude_policed(record.mcp_servers, home, None, home.path)
                    yield record
                    if isinstance(record, ConfigRecord) and fm.dialect == "claude_code":
                        projects.update(dict.fromkeys(self._claude_projects(path), record.display_path))
        for sig, _template, platforms, first, below, parts in self.templates.home_apps:
            if platforms & home.platforms and _may_hold(names, first):
                for path in self._existing(home.path + below, home.path, parts):
                    yield ArtifactRecord("app", sig.id, path, display_path(path, self.root), home.user)
        for project, recorder in self._recorded_projects(home):
            projects.setdefault(project, recorder)
        if self.walk_projects:
            walked, error = walk_projects(home.path, self.lib.project_markers)
            projects.update(dict.fromkeys(walked))
            if error is not None:
                yield ScanError(home.display, "walk_capped", error)
        for project in projects:
            yield from isolated_records(self._project(project, home, projects[project]),
                                        display_path(project, self.root))
        yield from self._extensions(home)
        yield from self._packages([expand_home_template(t, home) for t in _SITE_PACKAGES_HOME],
                                  [expand_home_template(t, home) for t in _NPM_HOME], user=home.user, prefix=home.path)

    # -- configs ---------------------------------------------------------------------------------
    def _config(self, path: str, sig: Signature, fm: FileMatcher, *, user: str, boundary: str) -> Iterator[Record]:
        from endpoint.scan.parsers import ConfigError, parse_config, walk

        shown = display_path(path, self.root)
        key = (self._real(path), sig.id)
        if key in self.claimed:
            return
        if fm.dialect == "none":
            self.claimed.add(key)
            yield ArtifactRecord("app", sig.id, path, shown, self._credit(key[0], _uid(key[0]), user) if user else "")
            return
        cache_key = f"{fm.dialect}\0{key[0]}"
        parsed = self._cached(cache_key, key[0], boundary)
        if parsed is None:
            try:
                text, self.owners[key[0]] = safeio.read_text_owned(path, boundary=boundary, resolver=self.resolver)
                parsed = parse_config(fm.dialect, text, path=shown)
            except safeio.ReadRefused as exc:
                parsed = ScanError(shown, exc.code, exc.detail)
            except ConfigError as exc:
                parsed = ScanError(shown, exc.code, exc.detail)
            except Exception as exc:  # a parser's bug on this one file: the file is one error, the scan goes on
                parsed = internal_error(shown, exc)
            if not _refused_on_the_way(parsed):
                self.parse_cache[cache_key] = parsed
        if not _refused_on_the_way(parsed):
            self.claimed.add(key)  # refused on this way (a link out of this home): the file's own home still reads it
        if user:
            user = self._credit(key[0], self.owners.get(key[0]), user)  # its owner's, however it was reached
        if isinstance(parsed, ScanError):
            if os.path.isdir(path):
                return  # a template that names a directory in one client is a file in another
            yield parsed
            return
        for failed in parsed.failures:  # one entry of the file could not be read; its others are there
            yield failed._replace(where=f"{shown}#{failed.where}")
        failures: list[ScanError] = []
        with isolated(failures, shown):
            record = ConfigRecord(path=path, display_path=shown, signature=sig.id, dialect=fm.dialect,
                                  scope=cast(Scope, fm.scope), user=user, mcp_servers=list(parsed.mcp_servers),
                                  models=list(parsed.models), base_urls=list(parsed.base_urls),
                                  providers=list(parsed.providers))
            record.autonomy = self.lib.autonomy_settings(sig, fm.dialect, parsed.document)
            record.credentials = credentials.from_leaves(walk(parsed.document), self._classify, where=shown,
                                                         key=self.fingerprint_key)
        if failures:
            yield failures[0]
        else:
            yield record

    def _project(self, project: str, home: Home, recorder: str | None = None) -> Iterator[Record]:
        if "\0" in project:
            return  # no such path on any file system
        real = self._real(project)
        if not os.path.isdir(real):
            return  # a project since deleted: nothing to read, nothing to say
        if not self._own_space(real, home):
            # A user's files say where their projects are; the scanner runs as root and does not go
            # where that user could not (another home, another user's folder, outside the scanned tree).
            yield ScanError(_shown_path(display_path(project, self.root)), "foreign_project",
                            f"recorded in {recorder or home.display} as a project of {home.user}, but it is "
                            f"outside {home.display} and not owned by {home.user}: nothing in it was read")
            return
        boundary = home.path if safeio.is_within(real, home.path) else real
        names = self._listing(project)
        shown = display_path(project, self.root)
        for sig, fm, first in self.templates.project:
            if not _may_hold(names, first):
                continue
            for path in self._existing(project + fm.path[len("{project}"):], project):
                for record in self._config(path, sig, fm, user=home.user, boundary=boundary):
                    if isinstance(record, ConfigRecord) and record.mcp_servers:
                        if fm.dialect == "mcp_json":
                            record.mcp_servers = self._approved_mcpjson(fm, record.mcp_servers, project, home,
                                                                        boundary)
                        # a server a project's own file declares belongs to that project, whatever the client
                        record.mcp_servers = [s if s.project is not None else s._replace(project=shown)
                                              for s in record.mcp_servers]
                    yield record

    # -- whose space, whose file --------------------------------------------------------------------
    def _know(self, home: Home) -> None:
        """Remember a home and its owner's uid (with --root, a tree's uids name no user of this machine:
        the homes' owners are how they are told apart)."""
        if home.path in self.homes:
            return
        self.homes[home.path] = home
        try:
            uid = os.stat(home.path).st_uid
        except OSError:
            return
        self.uid_users.setdefault(uid, set()).add(home.user)

    def _know_all(self) -> None:
        """Every home under the root, once per scan."""
        if not self._found_homes:
            self._found_homes = True
            for home in find_homes(self.root):
                self._know(home)

    def _live(self) -> bool:
        return self.root in ("", "/")

    def _home_holding(self, real: str) -> Home | None:
        """The innermost known home that ``real`` (a resolved path) lies in."""
        found = None
        for home in self.homes.values():
            if safeio.is_within(real, home.path) and (found is None or len(home.path) > len(found.path)):
                found = home
        return found

    def _uid_user(self, uid: int) -> str | None:
        """The user a uid is, if it says: this machine's user database on a live scan; with --root, the
        one user whose homes that uid owns (a uid owning several users' homes names none of them)."""
        if self._live():
            if uid not in self.uid_names:
                import pwd  # here: Windows has no pwd (nor a live root of "/")

                try:
                    self.uid_names[uid] = pwd.getpwuid(uid).pw_name
                except KeyError:
                    self.uid_names[uid] = None
            return self.uid_names[uid]
        users = self.uid_users.get(uid, set())
        return next(iter(users)) if len(users) == 1 else None

    def _own_space(self, real: str, home: Home) -> bool:
        """Whether a resolved folder is ``home``'s user's to point the scanner at: inside that home, or
        outside every other home and owned by that user (a folder of theirs elsewhere, e.g. /srv/work)."""
        if safeio.is_within(real, home.path):
            return True  # the common case, without a look at every other home
        holder = self._home_holding(real)
        if holder is not None:
            return holder.user == home.user
        if not self._live() and not safeio.is_within(real, self.resolver.boundary(self.root)):
            return False  # a link out of the scanned tree lands on this machine's own files
        try:
            uid = os.stat(real).st_uid
        except OSError:
            return False
        return self.uid_users.get(uid) == {home.user} or self._live() and self._uid_user(uid) == home.user

    def _cached(self, key: str, real: str, boundary: str) -> ParsedConfig | ScanError | None:
        """A file parsed before, if this way to it stays inside ``boundary`` too (a link from another home
        to a file read from its own home gets no copy of what was read there)."""
        parsed = self.parse_cache.get(key)
        return parsed if parsed is not None and safeio.is_within(real, self.resolver.boundary(boundary)) else None

    def _credit(self, real: str, uid: int | None, reached_from: str) -> str:
        """The user a file read from a home is credited to: whoever owns it, whichever home reached it."""
        if uid is not None:
            owner = self._uid_user(uid)
            if owner is not None:
                return owner
        holder = self._home_holding(real)
        return holder.user if holder is not None else reached_from

    def _approved_mcpjson(self, fm: FileMatcher, servers: list[McpServerConfig], project: str, home: Home,
                          boundary: str) -> list[McpServerConfig]:
        """Claude Code's ``.mcp.json`` servers as the approvals in its other files leave them."""
        from endpoint.scan.parsers import claude

        if fm.path != claude.MCPJSON_TEMPLATE:
            return servers
        servers = self._claude_policed(servers, home, project, boundary)
        here = os.path.normpath(project)

        def is_this_project(key: str) -> bool:
            return os.path.normpath(self._under_root(key)) == here

        sources = []
        for template, dialect, source in claude.APPROVAL_SOURCES:
            in_project = template.startswith("{project}")
            path = project + template[len("{project}"):] if in_project else expand_home_template(template, home)
            document = self._document(path, dialect, boundary if in_project else home.path)
            if source == "legacy":
                document = claude.legacy_project_entry(document, is_this_project)
            sources.append((source, document))
        return claude.project_servers(servers, display_path(project, self.root), claude.mcpjson_approvals(sources))

    def _claude_policed(self, servers: list[McpServerConfig], home: Home | None, project: str | None,
                        boundary: str, *, managed_file: bool = False) -> list[McpServerConfig]:
        """Claude Code's servers with those its organisation's policy blocks switched off: the managed
        settings and managed-mcp.json of this machine, the user's settings, the project's (if any)."""
        from endpoint.scan.parsers import claude

        managed, exclusive = self._claude_managed()
        sources: list[tuple[str, object]] = [("managed", document) for document in managed]
        if home is not None:
            sources.append(("user", self._document(expand_home_template("~/.claude/settings.json", home),
                                                   "claude_settings", home.path)))
        if project is not None:
            for name in ("settings.json", "settings.local.json"):
                sources.append(("project", self._document(f"{project}/.claude/{name}", "claude_settings", boundary)))
        return claude.apply_policy(servers, claude.mcp_policy(sources, exclusive=exclusive), managed_file=managed_file)

    def _claude_managed(self) -> tuple[list[object], bool]:
        """Claude Code's managed settings documents on this machine, and whether a managed-mcp.json is there."""
        if self._claude_machine is None:
            documents: list[object] = []
            exclusive = False
            for sig, fm in self.lib.file_templates:
                if sig.id != CLAUDE_CODE or fm.scope != "managed" or is_home_template(fm.path):
                    continue
                if not trusted_policy_template(fm.path):
                    continue  # a folder any Windows user can create: not the organisation's policy
                for pattern in expand_machine_template(fm.path, self.root):
                    for path in existing(pattern, self.root.rstrip("/")):
                        if fm.dialect == "mcp_json":
                            exclusive = True
                        elif fm.dialect == "claude_settings":
                            documents.append(self._document(path, "claude_settings", self.root))
            self._claude_machine = (documents, exclusive)
        return self._claude_machine

    def _document(self, path: str, dialect: str, boundary: str) -> object:
        """The parsed document of a file another one depends on, through the parse cache; None if unreadable."""
        from endpoint.scan.parsers import ConfigError, ParsedConfig, parse_config

        real = self._real(path)
        key = f"{dialect}\0{real}"
        parsed = self._cached(key, real, boundary)
        if parsed is None and os.path.isfile(path):
            try:
                parsed = parse_config(dialect, safeio.read_text(path, boundary=boundary, resolver=self.resolver),
                                      path=display_path(path, self.root))
            except (safeio.ReadRefused, ConfigError) as exc:
                parsed = ScanError(display_path(path, self.root), exc.code, exc.detail)
            if not _refused_on_the_way(parsed):
                self.parse_cache[key] = parsed
        return parsed.document if isinstance(parsed, ParsedConfig) else None

    def _claude_projects(self, path: str) -> list[str]:
        from endpoint.scan.parsers import ParsedConfig

        parsed = self.parse_cache.get(f"claude_code\0{self._real(path)}")
        document = parsed.document if isinstance(parsed, ParsedConfig) else None
        projects = document.get("projects") if isinstance(document, dict) else None
        if not isinstance(projects, dict):
            return []
        return [self._under_root(p) for p in list(projects)[:1000] if isinstance(p, str)]

    def _under_root(self, recorded: str) -> str:
        """An absolute path recorded in a config, as it lies under the scan root."""
        recorded = recorded.replace("\\", "/")
        if re.match(r"^[A-Za-z]:/", recorded):
            recorded = f"/mnt/{recorded[0].lower()}{recorded[2:]}"
        return os.path.join(self.root, recorded.lstrip("/")) if self.root not in ("", "/") else recorded

    def _recorded_projects(self, home: Home) -> Iterator[tuple[str, str]]:
        """Project folders the editors and opencode remember for this user, each with the file that says so."""
        bases = [f"~/.config/{d}/User" for d in _EDITOR_USER_DIRS]
        bases += [f"~/Library/Application Support/{d}/User" for d in _EDITOR_USER_DIRS]
        bases += [f"%APPDATA%/{d}/User" for d in _EDITOR_USER_DIRS]
        for base in bases:
            for path in self._existing(expand_home_template(base + "/workspaceStorage/*/workspace.json", home), home.path):
                folder = _json_field(path, home.path, "folder", self.resolver)
                try:
                    local = unquote(urlsplit(folder).path) if folder and folder.startswith("file://") else ""
                except ValueError:  # not a URL after all ("file://[x"): no project
                    local = ""
                if local:
                    yield self._under_root(local), display_path(path, self.root)
        for path in self._existing(expand_home_template("~/.local/share/opencode/storage/project/*.json", home), home.path):
            worktree = _json_field(path, home.path, "worktree", self.resolver)
            if worktree and worktree != "/":
                yield self._under_root(worktree), display_path(path, self.root)

    # -- artifacts -------------------------------------------------------------------------------
    def _extensions(self, home: Home) -> Iterator[Record]:
        dirs = [os.path.join(home.path, d, "extensions") for d in _EXTENSION_DIRS]
        for pattern in ("~/.local/share/JetBrains/*", "~/Library/Application Support/JetBrains/*/plugins",
                        "%APPDATA%/JetBrains/*/plugins"):
            dirs.extend(self._existing(expand_home_template(pattern, home), home.path))
        for directory in dirs:
            refused = self._linked_away(directory, home)
            if refused is not None:
                yield refused
                continue
            for name in _listdir(directory):
                m = _EXT_NAME.match(name)
                ident, version = (m["id"], m["version"]) if m else (name, "")
                sig = self.lib.match_extension(ident)
                if sig is not None:
                    path = os.path.join(directory, name)
                    yield ArtifactRecord("extension", sig.id, path, display_path(path, self.root), home.user,
                                         ident, version)

    def _linked_away(self, directory: str, home: Home) -> ScanError | None:
        """An error when a folder of a home is a link to somewhere that is not its user's (another home):
        its listing would credit that user with what another has."""
        if self._own_space(self._real(directory), home):
            return None
        return ScanError(display_path(directory, self.root), "symlink_escape",
                         f"links outside {home.display} to a folder that is not {home.user}'s; not listed")

    def _packages(self, site_patterns: list[str], npm_patterns: list[str], *, user: str,
                  prefix: str) -> Iterator[Record]:
        home = self.homes.get(prefix)  # None for the machine-wide folders
        for pattern in site_patterns:
            for site in self._existing(pattern, prefix):
                refused = None if home is None else self._linked_away(site, home)
                if refused is not None:
                    yield refused
                    continue
                for name in _listdir(site):
                    if name.endswith((".dist-info", ".egg-info")):
                        dist, _, rest = name.rpartition(".")[0].partition("-")
                        sig = self.lib.match_package("pypi", dist)
                        if sig is not None:
                            path = os.path.join(site, name)
                            yield ArtifactRecord("package", sig.id, path, display_path(path, self.root), user,
                                                 f"pypi:{dist}", rest)
        for pattern in npm_patterns:
            for modules in self._existing(pattern, prefix):
                refused = None if home is None else self._linked_away(modules, home)
                if refused is not None:
                    yield refused
                    continue
                for name in _listdir(modules):
                    names = [f"{name}/{sub}" for sub in _listdir(os.path.join(modules, name))] \
                        if name.startswith("@") else [name]
                    for package in names:
                        sig = self.lib.match_package("npm", package)
                        if sig is not None:
                            path = os.path.join(modules, package)
                            yield ArtifactRecord("package", sig.id, path, display_path(path, self.root), user,
                                                 f"npm:{package}", _npm_version(path, prefix, self.resolver))


class _Templates(NamedTuple):
    """The library's path templates, sorted by where they apply, each with the first folder it names."""

    # Home templates also carry their path below the home and its components (the same in every home).
    user: list[tuple[Signature, FileMatcher, frozenset[str], str | None, str, list[str]]]
    home_apps: list[tuple[Signature, str, frozenset[str], str | None, str, list[str]]]
    project: list[tuple[Signature, FileMatcher, str | None]]

    @classmethod
    def of(cls, lib: Library) -> _Templates:
        return cls(
            user=[(sig, fm, template_platforms(fm.path, list(fm.platforms)), _first_name(fm.path), *_below_home(fm.path))
                  for sig, fm in lib.file_templates if fm.scope == "user" and is_home_template(fm.path)],
            home_apps=[(sig, t, template_platforms(t, []), _first_name(t), *_below_home(t))
                       for sig, t in lib.app_templates if is_home_template(t)],
            project=[(sig, fm, _first_name(fm.path)) for sig, fm in lib.file_templates if fm.scope == "project"],
        )


_NOWHERE = Home("", "", frozenset(), "")


def _below_home(template: str) -> tuple[str, list[str]]:
    """What ``expand_home_template`` appends to a home's path for ``template``, and its components."""
    below = expand_home_template(template, _NOWHERE)
    return below, below.strip("/").split("/")


def _first_name(template: str) -> str | None:
    """The lower-cased first component a home or project template names below its base; None for a wildcard."""
    for var, sub in (("%APPDATA%", "AppData"), ("%LOCALAPPDATA%", "AppData"), ("%USERPROFILE%", ""), ("~", ""),
                     ("{project}", "")):
        if template.startswith(var):
            first = (sub or template[len(var):].lstrip("/").split("/", 1)[0]).lower()
            return None if "*" in first or not first else first
    return None


def _may_hold(names: frozenset[str] | None, first: str | None) -> bool:
    return names is None or first is None or first in names


def walk_projects(home: str, markers: frozenset[str], *, max_depth: int = WALK_MAX_DEPTH,
                  max_entries: int = WALK_MAX_ENTRIES) -> tuple[list[str], str | None]:
    """Directories below ``home`` holding a project marker, and why the walk stopped early, if it did."""
    found: list[str] = []
    queue: deque[tuple[str, int]] = deque([(home, 0)])
    seen = 0
    while queue:
        directory, depth = queue.popleft()
        try:
            with os.scandir(directory) as entries:
                subdirs = []
                is_project = False
                for entry in entries:
                    seen += 1
                    if entry.name in markers and depth > 0:
                        is_project = True
                    if depth < max_depth and entry.name not in SKIP_DIRS and entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.path)
                    if seen >= max_entries:
                        if is_project:
                            found.append(directory)
                        return found, f"project walk stopped after {max_entries} entries"
        except OSError:
            continue
        if is_project:
            found.append(directory)
        queue.extend((d, depth + 1) for d in sorted(subdirs))
    return found, None


def _refused_on_the_way(parsed: object) -> bool:
    """A read refused for the way the file was reached, not for the file itself: another way may read it."""
    return isinstance(parsed, ScanError) and parsed.error == "symlink_escape"


def _uid(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


def _shown_path(path: str, limit: int = 400) -> str:
    """A path that came from a user's file, fit for one line of an error: control characters escaped, cut."""
    shown = path.encode("unicode_escape", "backslashreplace").decode("ascii") if not path.isprintable() else path
    return shown if len(shown) <= limit else shown[:limit] + "…"


def _names(directory: str) -> frozenset[str] | None:
    """Lower-cased, so that a folder on a case-insensitive file system is never missed; None when the
    folder exists but may not be listed (its entries may still be reachable by name)."""
    try:
        return frozenset(name.lower() for name in os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    except OSError:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _json_field(path: str, boundary: str, name: str, resolver: safeio.Resolver | None = None) -> str | None:
    try:
        value = json.loads(safeio.read_text(path, boundary=boundary, limit=64 << 10, resolver=resolver)).get(name)
    except (safeio.ReadRefused, ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def _npm_version(path: str, boundary: str, resolver: safeio.Resolver | None = None) -> str:
    value = _json_field(os.path.join(path, "package.json"), boundary, "version", resolver)
    return value or ""
