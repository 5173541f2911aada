"""``python -m installers deb|rpm|msi|macos|all|freeze [--payload DIR]``: the one entry point of the build.

Each format wraps a payload, the frozen endpoint folder of its OS. Without ``--payload`` the endpoint is
frozen here, for this OS (``installers.freeze``), once for all the formats that take it. A Windows or
macOS package needs a folder frozen on that OS (the artifact of the Windows or macOS workflow):
``--payload DIR``. ``--foreign-payload`` wraps a folder of another OS anyway, to check a package's
layout on a machine that cannot freeze for its OS; the package is then no use on that OS, and this
says so. Everything is written under ``--out`` (``dist/``).

Every package also ships the tray companion (``agentroster-companion``), frozen into a folder of its
own (``installers.freeze.COMPANION``) and started at each user's login: frozen here with the endpoint,
or, with ``--payload``, the folder given by ``--companion DIR`` (the workflows freeze both).
``--no-companion`` builds the packages without it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from installers import freeze

#: each format: the module of its wrapper, and the OS its payload is frozen on
FORMATS: dict[str, tuple[str, str]] = {
    "deb": ("installers.linux.deb", "linux"),
    "rpm": ("installers.linux.rpm", "linux"),
    "msi": ("installers.windows.build", "windows"),
    "macos": ("installers.macos.build", "macos"),
}
OS_NAMES = {"linux": "Linux", "windows": "Windows", "macos": "macOS"}
WORKFLOWS = {"windows": "the Windows workflow (.github/workflows/windows.yml)",
             "macos": "the macOS workflow (.github/workflows/macos.yml)", "linux": "a Linux machine"}

#: build(payload, out, version, companion=the companion's folder or None) -> the paths written
Builder = Callable[..., list[Path]]


class BuildError(Exception):
    """A format cannot be built as asked; the message says why and what to do. ``other_os``: it needs a
    payload frozen on another OS (``all`` then builds the others and says so; not a failure)."""

    def __init__(self, message: str, *, other_os: bool = False) -> None:
        super().__init__(message)
        self.other_os = other_os


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m installers", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("target", choices=[*FORMATS, "all", "freeze"],
                        help="the package to build (all: every one this machine can; freeze: only the folder)")
    parser.add_argument("--payload", metavar="DIR", type=Path,
                        help="a frozen endpoint folder to wrap instead of freezing here (for msi and macos: "
                             "the one frozen on that OS)")
    parser.add_argument("--foreign-payload", action="store_true",
                        help="wrap a folder frozen for another OS (this machine's, without --payload): for "
                             "checking a package's layout only, the package will not run there")
    parser.add_argument("--companion", metavar="DIR", type=Path,
                        help="the frozen companion folder to ship with --payload (agentroster-companion-<version>-"
                             "<os>-<arch>, frozen on the same OS); without --payload it is frozen here")
    parser.add_argument("--no-companion", action="store_true",
                        help="build the packages without the tray companion (and freeze only the endpoint)")
    parser.add_argument("--out", metavar="DIR", type=Path, default=freeze.ROOT / "dist",
                        help="where everything is written (default: dist/ in the repository)")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    version = freeze.version()
    try:
        if args.companion is not None and args.no_companion:
            raise BuildError("--companion and --no-companion ask for opposite things: give one")
        if args.target == "freeze":
            print(_freeze_here(out))
            if not args.no_companion:
                print(_freeze_companion_here(out))
            return 0
        if args.payload is not None:
            _check_payload(args.payload)
        if args.companion is not None:
            _check_companion(args.companion)
        wanted = list(FORMATS) if args.target == "all" else [args.target]
        code = 0
        for fmt in wanted:
            try:
                payload = _payload_for(fmt, args.payload, out, foreign=args.foreign_payload)
                companion = _companion_for(fmt, args, out)
                for path in _builder(fmt)(payload, out, version, companion=companion):
                    print(path)
            except BuildError as exc:
                if args.target != "all":
                    raise
                print(f"installers: {fmt}: not built: {exc}", file=sys.stderr)
                code = code if exc.other_os else max(code, 2)
            except freeze.FreezeError:
                raise
            except Exception as exc:  # the wrapper's own error (a missing tool, a bad payload): it says what to do
                print(f"installers: {fmt} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                code = max(code, 1)
        return code
    except BuildError as exc:
        print(f"installers: {args.target}: {exc}", file=sys.stderr)
        return 2
    except freeze.FreezeError as exc:
        print(f"installers: freezing the endpoint failed: {exc}", file=sys.stderr)
        return 1


@functools.cache
def _freeze_here(out: Path) -> Path:
    """This OS's frozen folder, made once per run (``all`` wraps the same one in each package)."""
    return freeze.freeze(out)  # PyInstaller works in a private temporary folder, never a shared out/../build


@functools.cache
def _freeze_companion_here(out: Path) -> Path:
    """This OS's frozen companion folder, made once per run."""
    return freeze.freeze_companion(out)


def _companion_for(fmt: str, args: argparse.Namespace, out: Path) -> Path | None:
    """The companion folder ``fmt`` ships: ``--companion``, else frozen here with the endpoint (not with
    ``--payload``: a companion frozen here would not run on the payload's OS), else none (said each time)."""
    if args.no_companion:
        return None
    if args.companion is not None:
        return Path(args.companion).resolve()
    if args.payload is None:
        return _freeze_companion_here(out)
    print(f"installers: {fmt}: built without the tray companion: pass --companion DIR, the companion folder "
          "frozen beside the payload (or --no-companion to say so)", file=sys.stderr)
    return None


def _check_companion(companion: Path) -> None:
    names = ("agentroster-companion", "agentroster-companion.exe", "agentroster-companion.app")
    if not companion.is_dir() or not any((companion / name).exists() for name in names):
        raise BuildError(f"--companion {companion}: not a frozen companion folder (it holds agentroster-companion, "
                         "agentroster-companion.exe or agentroster-companion.app: python -m installers freeze makes it)")


def _payload_for(fmt: str, payload: Path | None, out: Path, *, foreign: bool) -> Path:
    """The folder that ``fmt`` wraps: ``payload`` if given and of the format's OS, else one frozen here."""
    _, wants = FORMATS[fmt]
    if payload is not None:
        got = payload_os(payload)
        if got != wants and not foreign:
            raise BuildError(f"{payload} is a {OS_NAMES.get(got, got)} build, not a {OS_NAMES[wants]} one: pass "
                             f"the folder frozen by {WORKFLOWS[wants]}, or add --foreign-payload to check the "
                             "package's layout with it", other_os=True)
        if got != wants:
            _warn_foreign(fmt, got, wants)
        return payload.resolve()
    here = freeze.os_name()
    if here != wants and not foreign:
        raise BuildError(f"the {OS_NAMES[wants]} package needs the endpoint frozen on {OS_NAMES[wants]}, and this is "
                         f"{OS_NAMES.get(here, here)}: pass --payload DIR, the folder frozen by {WORKFLOWS[wants]}",
                         other_os=True)
    folder = _freeze_here(out)
    if here != wants:
        _warn_foreign(fmt, here, wants)
    return folder


def _warn_foreign(fmt: str, got: str, wants: str) -> None:
    print(f"installers: {fmt}: wrapping a {OS_NAMES.get(got, got)} build: this package is NOT a {OS_NAMES[wants]} "
          f"binary, only a check of the package's layout; do not deploy it", file=sys.stderr)


def _check_payload(payload: Path) -> None:
    if not payload.is_dir():
        raise BuildError(f"--payload {payload}: not a folder (give the frozen endpoint folder, "
                         "agentroster-endpoint-<version>-<os>-<arch>)")
    if not any((payload / name).is_file() for name in ("agentroster", "agentroster.exe")):
        raise BuildError(f"--payload {payload}: no agentroster or agentroster.exe in it: is it the frozen endpoint "
                         "folder (agentroster-endpoint-<version>-<os>-<arch>)?")


def payload_os(payload: Path) -> str:
    """The OS a frozen folder's executable is for, from its first bytes: linux, windows, macos or unknown."""
    for name in ("agentroster.exe", "agentroster"):
        path = payload / name
        if path.is_file():
            with open(path, "rb") as fh:
                head = fh.read(4)
            if head.startswith(b"MZ"):
                return "windows"
            if head == b"\x7fELF":
                return "linux"
            if head in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
                        b"\xca\xfe\xba\xbe"):
                return "macos"
    return "unknown"


def _builder(fmt: str) -> Builder:
    """The wrapper's ``build``, imported only when its format is built."""
    module_name, _ = FORMATS[fmt]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parents = {module_name.rsplit(".", n)[0] for n in range(module_name.count(".") + 1)}
        if exc.name not in parents:
            raise  # the wrapper is there but something it imports is not: that is its own error
        raise BuildError(f"not available yet ({module_name.replace('.', '/')}.py is not in this checkout)") from None
    build = getattr(module, "build", None)
    if not callable(build):
        raise BuildError(f"not available yet ({module_name} has no build(payload, out, version))")
    return build  # type: ignore[no-any-return]


if __name__ == "__main__":
    raise SystemExit(main())
