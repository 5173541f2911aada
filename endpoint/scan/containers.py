"""Which container a process runs in, and reading files through that container's root as the host sees it.

A Docker or Podman container's process is visible from the host, but its files live in another mount
namespace. Two things are read here, both as untrusted input:

- **Which container** (Linux): ``/proc/PID/cgroup`` names the container's cgroup (``docker-<id>.scope``,
  ``/docker/<id>``, ``libpod-<id>.scope``, ``/kubepods/…/<id>``, ``cri-containerd-<id>.scope``,
  ``/buildkit/<id>``), else ``/proc/PID/mountinfo`` shows the runtime's per-container bind mounts
  (``/var/lib/docker/containers/<id>/hostname``, ``…/overlay-containers/<id>/userdata/…``). The
  container's name and image come from the runtime's own metadata where the host can read it: Docker's
  ``/var/lib/docker/containers/<id>/config.v2.json``, Podman's ``containers.json`` (the root store, and
  the rootless store in the home of the process's user). No runtime command is ever run.
- **Its files** (``InRoot``): a path inside the container is opened one component at a time from an open
  descriptor of ``/proc/PID/root``, never by a path string the kernel would resolve: a symlink in the
  container is resolved *inside* its root (a link to ``/etc/shadow`` means the container's own
  ``/etc/shadow``), ``..`` stops at the container's ``/``, and a folder swapped for a symlink between two
  steps is refused (``O_NOFOLLOW`` on every step). The file read is then capped like ``safeio``'s.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import deque
from typing import NamedTuple

from endpoint.scan import safeio
from signatures.trusted_files import read_capped

PROC = "/proc"
DOCKER_CONTAINERS = "/var/lib/docker/containers"
PODMAN_STORE = "/var/lib/containers/storage"
ROOTLESS_STORE = ".local/share/containers/storage"  # below the user's home
#: caps on what is read of /proc and of the runtimes' metadata
PROC_FILE_BYTES = 64 << 10
DOCKER_CONFIG_BYTES = 1 << 20
PODMAN_INDEX_BYTES = 4 << 20
MAX_LINKS = 40  # symlinks followed on one path, as the kernel's own limit
NAME_CHARS = 256  # a name or image longer than this is cut

_HEX64 = r"[0-9a-f]{64}"
# cgroup path shapes, most specific first: (runtime, regex with the id as group 1)
_CGROUP_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("podman", re.compile(rf"/libpod-({_HEX64})\.scope(?:/|$)")),
    ("docker", re.compile(rf"/docker-({_HEX64})\.scope(?:/|$)")),
    ("containerd", re.compile(rf"/cri-containerd-({_HEX64})\.scope(?:/|$)")),
    ("cri-o", re.compile(rf"/crio-({_HEX64})\.scope(?:/|$)")),
    ("containerd", re.compile(rf"/nerdctl-({_HEX64})\.scope(?:/|$)")),
    ("kubernetes", re.compile(rf"^/kubepods[^:]*/pod[0-9a-f_-]+(?:\.slice)?/({_HEX64})(?:/|$)")),
    ("docker", re.compile(rf"^/docker/({_HEX64})(?:/|$)")),
    ("podman", re.compile(rf"^/libpod_parent/libpod-({_HEX64})(?:/|$)")),
    ("buildkit", re.compile(r"^/buildkit/([a-z0-9]{20,64})(?:/|$)")),
)
_MOUNT_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("podman", re.compile(rf"/overlay-containers/({_HEX64})/userdata/")),
    ("docker", re.compile(rf"/containers/({_HEX64})/(?:hostname|hosts|resolv\.conf)$")),
)


class Container(NamedTuple):
    """A container a process runs in: its runtime, id, and the name and image its runtime recorded."""

    runtime: str  # docker, podman, containerd, cri-o, kubernetes, buildkit
    id: str
    name: str = ""  # "" when the runtime's metadata could not be read
    image: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"runtime": self.runtime, "id": self.id, "name": self.name, "image": self.image}


#: the runtimes as a person names them, for the evidence line that says where an agent runs
RUNTIME_NAMES = {"docker": "Docker", "podman": "Podman", "containerd": "containerd", "cri-o": "CRI-O",
                 "kubernetes": "Kubernetes", "buildkit": "BuildKit"}


def describe(container: tuple[str, str, str, str]) -> str:
    """A process's container as an evidence line says it: "runs in Docker container invoice-agent, image
    acme/agent:1.4" (the id's first 12 digits when the runtime's metadata gave no name)."""
    runtime, ident, name, image = container
    said = f"runs in {RUNTIME_NAMES.get(runtime, runtime)} container {name or ident[:12]}"
    return f"{said}, image {image}" if image else said


def parse_cgroup(text: str) -> tuple[str, str] | None:
    """(runtime, id) from a ``/proc/PID/cgroup`` text (v2 ``0::PATH`` and v1 ``N:controllers:PATH`` lines)."""
    for line in text.splitlines()[:64]:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        path = parts[2]
        for runtime, shape in _CGROUP_SHAPES:
            match = shape.search(path)
            if match:
                return runtime, match.group(1)
    return None


def parse_mountinfo(text: str) -> tuple[str, str] | None:
    """(runtime, id) from a ``/proc/PID/mountinfo`` text: the runtime's per-container bind mounts' sources."""
    for line in text.splitlines()[:4096]:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        source = fields[3]  # the mount's root within its filesystem (proc(5))
        for runtime, shape in _MOUNT_SHAPES:
            match = shape.search(source)
            if match:
                return runtime, match.group(1)
    return None


def in_other_root(pid: int, proc: str = PROC) -> bool:
    """Whether the process's root directory is not ours (a chroot or a container); False when it is gone."""
    try:
        theirs = os.stat(f"{proc}/{pid}/root")
        ours = os.stat(f"{proc}/self/root")
    except OSError:
        return False
    return (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino)


def container_of(pid: int, uid: int | None = None, *, proc: str = PROC, docker: str = DOCKER_CONTAINERS,
                 podman: str = PODMAN_STORE, errors: list[tuple[str, str]] | None = None,
                 seen: dict[tuple[str, str, int | None], Container] | None = None) -> Container | None:
    """The container process ``pid`` runs in, with its name and image where the runtime's metadata tells
    them; None when it runs in none we can tell (or is gone). ``uid``: its user, for a rootless store.
    What could not be read of the metadata goes to ``errors`` as (code, detail). ``seen`` (one per scan)
    keeps each container's metadata: a container's many processes read it once, and report it once."""
    found = None
    for name, parse in (("cgroup", parse_cgroup), ("mountinfo", parse_mountinfo)):
        try:
            text = _read_proc(f"{proc}/{pid}/{name}")
        except OSError:
            return None
        found = parse(text)
        if found is not None:
            break
    if found is None:
        return None
    runtime, ident = found
    if seen is not None and (runtime, ident, uid) in seen:
        return seen[(runtime, ident, uid)]
    problems: list[tuple[str, str]] = [] if errors is None else errors
    named: tuple[str, str] | None = None
    if runtime in ("docker", "kubernetes"):
        named = docker_metadata(ident, docker, problems)
    if named is None and runtime in ("podman", "kubernetes", "docker"):
        stores = [podman]
        home = _home(uid)
        if home:
            stores.append(os.path.join(home, ROOTLESS_STORE))
        for store in stores:
            named = podman_metadata(ident, store, problems, owner=uid)
            if named is not None:
                runtime = "podman" if runtime == "docker" else runtime
                break
    name, image = named or ("", "")
    container = Container(runtime, ident, name, image)
    if seen is not None and len(seen) < 4096:
        seen[(found[0], ident, uid)] = container
    return container


def docker_metadata(ident: str, containers: str = DOCKER_CONTAINERS,
                    errors: list[tuple[str, str]] | None = None) -> tuple[str, str] | None:
    """(name, image) from Docker's ``<containers>/<id>/config.v2.json`` (``Name``, ``Config.Image``)."""
    if not re.fullmatch(_HEX64, ident):
        return None  # never a path made of an id that is no container id
    path = os.path.join(containers, ident, "config.v2.json")
    doc = _json(path, containers, DOCKER_CONFIG_BYTES, errors, owners=(0,))
    if not isinstance(doc, dict):
        return None
    config = doc.get("Config")
    image = config.get("Image") if isinstance(config, dict) else None
    name = doc.get("Name")
    return _text(name.lstrip("/") if isinstance(name, str) else None), _text(image)


def podman_metadata(ident: str, store: str = PODMAN_STORE, errors: list[tuple[str, str]] | None = None, *,
                    owner: int | None = None) -> tuple[str, str] | None:
    """(name, image) from a containers/storage ``overlay-containers/containers.json`` (its ``names`` and the
    ``image-name`` in its ``metadata`` string), or None when the store holds no such container."""
    if not re.fullmatch(_HEX64, ident):
        return None
    folder = os.path.join(store, "overlay-containers")
    owners = (0,) if owner in (None, 0) else (0, owner)
    doc = _json(os.path.join(folder, "containers.json"), folder, PODMAN_INDEX_BYTES, errors, owners=owners)
    if not isinstance(doc, list):
        return None
    for entry in doc:
        if not isinstance(entry, dict) or entry.get("id") != ident:
            continue
        names = entry.get("names")
        name = _text(names[0]) if isinstance(names, list) and names else ""
        image = ""
        try:
            meta = json.loads(entry["metadata"]) if isinstance(entry.get("metadata"), str) else None
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            meta = None
        if isinstance(meta, dict):
            image = _text(meta.get("image-name"))
            name = name or _text(meta.get("name"))
        return name, image or _text(entry.get("image"))
    return None


def _json(path: str, boundary: str, limit: int, errors: list[tuple[str, str]] | None,
          owners: tuple[int | None, ...]) -> object:
    try:
        text, uid = safeio.read_text_owned(path, boundary=boundary, limit=limit)
    except safeio.ReadRefused as exc:
        if exc.code != "not_found" and errors is not None:
            errors.append((exc.code, f"{path}: {exc.detail}"))
        return None
    if uid not in owners:
        if errors is not None:
            errors.append(("not_owner", f"{path}: owned by uid {uid}, not by the runtime's user; not used"))
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        if errors is not None:
            errors.append(("not_json", f"{path}: not JSON; the container's name and image are not known"))
        return None


def _text(value: object) -> str:
    return value[:NAME_CHARS] if isinstance(value, str) else ""


def _home(uid: int | None) -> str:
    if uid is None or uid == 0:
        return ""
    import pwd  # here: Windows has no pwd, and imports this module too (through the projects)

    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return ""


def _read_proc(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        size = 0
        while size < PROC_FILE_BYTES:
            chunk = os.read(fd, PROC_FILE_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(fd)


# -- reading inside a container's root -------------------------------------------------------------

_O_PATH = getattr(os, "O_PATH", 0)  # Linux: a descriptor that only names a folder
# getattr: Windows has none of these and imports this module too; a container's root is Linux's /proc only
_STEP = _O_PATH | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0)
         | getattr(os, "O_CLOEXEC", 0))


class InRoot:
    """Files below the root of process ``pid`` (``/proc/PID/root``), with every symlink resolved inside it.

    Paths given are the host's view, ``prefix`` + the path inside (``/proc/PID/root/app/main.py``).
    """

    def __init__(self, pid: int, proc: str = PROC) -> None:
        self.pid = pid
        self.prefix = f"{proc}/{pid}/root"

    def inner(self, path: str) -> str | None:
        """The path inside the root, or None when ``path`` is not below ``prefix``."""
        if path == self.prefix:
            return "/"
        if path.startswith(self.prefix + "/"):
            return path[len(self.prefix):]
        return None

    def resolve(self, path: str) -> str:
        """``path``'s real location inside the root, as the host reaches it (prefix + resolved inner path)."""
        inner = self.inner(path)
        if inner is None:
            raise safeio.ReadRefused("symlink_escape", f"{path} is not below {self.prefix}")
        fd, real = self._open(inner, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        os.close(fd)
        return self.prefix + real if real != "/" else self.prefix

    def _open(self, inner: str, final: int) -> tuple[int, str]:
        return _walk_named(self, inner, final)

    def open_file(self, path: str, *, boundary: str, limit: int) -> tuple[int, os.stat_result]:
        """A descriptor of the regular file ``path`` below ``boundary`` (both resolved inside the root) of at
        most ``limit`` bytes, and its ``fstat``; the caller closes it. Raises ``safeio.ReadRefused``."""
        inner = self.inner(path)
        if inner is None:
            raise safeio.ReadRefused("symlink_escape", f"{path} is not inside the container's root")
        try:
            real_boundary = self.resolve(boundary)
            fd, real = self._open(inner, _FILE)
        except safeio.ReadRefused:
            raise
        except FileNotFoundError as exc:
            raise safeio.ReadRefused("not_found", "no such file") from exc
        except ProcessLookupError as exc:
            raise safeio.ReadRefused("not_found", "the container's process is gone") from exc
        except OSError as exc:
            code = {40: "symlink_loop", 13: "permission_denied", 1: "permission_denied", 6: "not_regular",
                    20: "not_found"}.get(exc.errno or 0, "unreadable")
            raise safeio.ReadRefused(code, os.strerror(exc.errno) if exc.errno else str(exc)) from exc
        try:
            if not safeio.is_within(self.prefix + real if real != "/" else self.prefix, real_boundary):
                raise safeio.ReadRefused("symlink_escape", f"links outside {boundary}; not followed")
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise safeio.ReadRefused("not_regular", f"{safeio.file_kind(st.st_mode)}, not a regular file")
            if st.st_size > limit:
                raise safeio.ReadRefused("too_large", f"{st.st_size} bytes, over the {limit}-byte cap")
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def read_text_owned(self, path: str, *, boundary: str, limit: int) -> tuple[str, int]:
        """``safeio.read_text_owned`` for a file below the root: a regular file below ``boundary``, at most
        ``limit`` bytes, and the uid that owns it."""
        fd, st = self.open_file(path, boundary=boundary, limit=limit)
        try:
            data = read_capped(fd, limit)
            if data is None:
                raise safeio.ReadRefused("too_large", f"over the {limit}-byte cap")
            return safeio.decode_text(data), st.st_uid
        except OSError as exc:
            raise safeio.ReadRefused("unreadable", os.strerror(exc.errno or 5)) from exc
        finally:
            os.close(fd)

    def kind(self, path: str, *, follow: bool = True) -> str:
        """What ``path`` is inside the root: "file", "dir", "link" (only when not ``follow``ing the last
        component), "other" (a FIFO, socket, device), or "" when it is not there or cannot be reached.
        The existence checks of a container's project ask this, never the host's kernel by a path string."""
        inner = self.inner(path)
        if inner is None:
            return ""
        try:
            if follow or inner == "/":
                fd, _ = self._open(inner, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    mode = os.fstat(fd).st_mode
                finally:
                    os.close(fd)
            else:
                parent, name = inner.rsplit("/", 1)
                if name in ("", ".", ".."):
                    return self.kind(path)
                fd, _ = self._open(parent or "/", _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
                finally:
                    os.close(fd)
        except safeio.ReadRefused as exc:
            return "other" if exc.code == "not_regular" else ""
        except OSError:
            return ""
        return ("file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else
                "link" if stat.S_ISLNK(mode) else "other")

    def listing(self, folder: str, limit: int) -> list[str]:
        """The names in ``folder`` (a folder inside the root, links resolved there), at most ``limit``."""
        inner = self.inner(folder)
        if inner is None:
            return []
        try:
            fd, _ = self._open(inner, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return []
        names: list[str] = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    names.append(entry.name)
                    if len(names) >= limit:
                        break
        except OSError:
            return names
        finally:
            os.close(fd)
        return names


def _walk_named(where: InRoot, inner: str, final: int) -> tuple[int, str]:
    """``InRoot._walk`` keeping the names walked, so the resolved path inside the root is known."""
    try:
        root = os.open(where.prefix, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ProcessLookupError(exc.errno, "the process is gone", where.prefix) from exc
    fds: list[int] = [root]  # descriptors from the root down to the current folder
    names: list[str] = []  # the names walked below the root
    parts = deque(p for p in inner.split("/") if p and p != ".")
    links = 0
    try:
        while parts:
            name = parts.popleft()
            if name == "..":
                if names:  # above the root's "/" is still its "/": the kernel's ".." is never used
                    os.close(fds.pop())
                    names.pop()
                continue
            st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(40, "too many levels of symbolic links")  # ELOOP
                target = os.readlink(name, dir_fd=fds[-1])
                if target.startswith("/"):  # absolute: from the container's root, never the host's
                    while len(fds) > 1:
                        os.close(fds.pop())
                    names.clear()
                parts.extendleft(reversed([p for p in target.split("/") if p and p != "."]))
                continue
            if not parts:  # the last component: opened with the caller's flags (O_NOFOLLOW: no swap)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    raise safeio.ReadRefused("not_regular", f"{safeio.file_kind(st.st_mode)}, not a regular file; "
                                                            "not opened")
                return os.open(name, final, dir_fd=fds[-1]), "/" + "/".join([*names, name])
            fds.append(os.open(name, _STEP, dir_fd=fds[-1]))
            names.append(name)
        return os.open(".", final, dir_fd=fds[-1]), "/" + "/".join(names)
    finally:
        for fd in fds:
            os.close(fd)
