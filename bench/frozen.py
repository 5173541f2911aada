"""Measures the frozen endpoint against its budget; prints figures, asserts nothing.

(a) Size: the frozen folder (``installers.freeze``, made or reused in dist/) on disk, and packed as a
    package would hold it: a tar compressed with xz (dpkg-deb's default, level 6) and with gzip (9);
    the largest parts of ``_internal/``; and the size of any .deb/.rpm of this version already in dist/.
    Budget: <= 60 MB compressed. The same for the tray companion's folder (``agentroster-companion``,
    Qt's core, GUI and widgets), and the two together, as the packages carry both.
(b) Speed: ``agentroster --version`` (the start alone), ``agentroster scan --json --root HOME
    --no-processes`` on a small tmp home (one ``build_homes`` home) and ``agentroster scan --json`` of
    this machine, each N times from the frozen folder and from the venv, alternating: median wall ms
    of each and their ratio. Budget: frozen <= 1.3x the venv.

Each side has its own warm signatures cache (AGENTROSTER_CACHE_DIR, filled by a warm-up run: the cache
is keyed by the packs' paths, which differ between the two) and the venv its bytecode cached (a
temporary PYTHONPYCACHEPREFIX, filled by the same warm-up), as an installed machine has both.

(b') The companion's start: ``agentroster-companion --self-check`` (Qt started offscreen, its tray icon
    and windows made, then quit), wall median of N runs.

``--scapy`` freezes a second folder with scapy in it (as the macOS and Windows builds carry it, since
they capture through it) into a temporary dist and prints what that adds.

``--repeat`` freezes the same checkout again into another folder and says whether the two are the
same byte for byte (the build is meant to be repeatable: a lock, SOURCE_DATE_EPOCH, PYTHONHASHSEED).

``python bench/frozen.py [--runs N] [--scapy] [--repeat]``
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for extra in (REPO / "tests", REPO):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from factories import build_homes  # noqa: E402

from installers import freeze  # noqa: E402

BUDGET_RATIO = 1.3
BUDGET_COMPRESSED_MB = 60
VENV_AGENTROSTER = Path(sys.executable).with_name("agentroster")


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def packed_size(folder: Path, mode: str, **kw: int) -> int:
    """The size of ``folder`` as a tar compressed in ``mode`` (w:xz, w:gz), counted without a file."""
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode=mode, **kw) as tar:  # type: ignore[call-overload]
        tar.add(folder, arcname=folder.name)
    return sink.tell()


def sizes(folder: Path, target: freeze.Target = freeze.ENDPOINT) -> int:
    """Print the folder's sizes; answer its tar.xz size."""
    on_disk = freeze.folder_size(folder)
    started = time.monotonic()
    xz = packed_size(folder, "w:xz", preset=6)
    xz_s = time.monotonic() - started
    gz = packed_size(folder, "w:gz", compresslevel=9)
    print(f"(a) size of {folder.name}")
    print(f"    on disk          {mb(on_disk)}  ({sum(1 for p in folder.rglob('*') if p.is_file())} files)")
    print(f"    tar.xz (-6)      {mb(xz)}  (packed in {xz_s:.1f} s)")
    print(f"    tar.gz (-9)      {mb(gz)}")
    worst = max(xz, gz)
    verdict = "within" if worst <= BUDGET_COMPRESSED_MB * 1e6 else "OVER"
    print(f"    budget           <= {BUDGET_COMPRESSED_MB} MB compressed: {verdict}")
    internal = folder / "_internal"
    if not internal.is_dir():  # the macOS companion: an application bundle
        internal = next(folder.glob("*.app/Contents/Frameworks"), folder)
    parts = sorted(((freeze.folder_size(p) if p.is_dir() else p.stat().st_size, p.name)
                    for p in internal.iterdir() if not p.is_symlink()), reverse=True)  # links: counted where they point
    print("    largest parts    " + ", ".join(f"{name} {mb(size)}" for size, name in parts[:8]))
    executable = target.executable_in(folder)
    print(f"    executable       {mb(executable.stat().st_size)} (the bootloader and the modules' archive)")
    if target is freeze.ENDPOINT:
        for package in sorted(folder.parent.glob(f"agentroster*{freeze.version()}*")):
            if package.suffix in (".deb", ".rpm", ".msi", ".pkg"):
                print(f"    {package.name:<16} {mb(package.stat().st_size)}")
    return xz


def companion_start(folder: Path, runs: int) -> None:
    """The frozen companion's --self-check, start to exit (offscreen)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    exe = str(freeze.COMPANION.executable_in(folder))
    timed = Runs()
    timed.run([exe, "--self-check"], env)  # warm: the page cache
    timed = Runs()
    for _ in range(runs):
        timed.run([exe, "--self-check"], env)
    print(f"(b') agentroster-companion --self-check, {runs} runs: wall median {statistics.median(timed.wall):.0f} ms "
          f"(min {min(timed.wall):.0f}), CPU median {statistics.median(timed.cpu):.0f} ms")


@dataclass
class Runs:
    """One command's timed runs: wall and CPU (user + system) ms of each."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run(self, argv: list[str], env: dict[str, str]) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        # no timeout: with one, subprocess waits by polling at 0.5, 1, 2 … 50 ms, and every run would
        # measure as one of those steps (32, 64, 114 ms) rather than its own time
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        self.wall.append((time.perf_counter() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)


def speed(folder: Path, runs: int, work: Path) -> None:
    home = build_homes(work / "machine", homes=1, seed=5).root
    frozen_env = {**os.environ, "AGENTROSTER_CACHE_DIR": str(work / "frozen-cache")}
    venv_env = {**os.environ, "AGENTROSTER_CACHE_DIR": str(work / "venv-cache"),
                "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    venv_env.pop("PYTHONDONTWRITEBYTECODE", None)
    cases = {
        "--version (start only)": ["--version"],
        "scan --json, small tmp home": ["scan", "--json", "--root", str(home), "--no-processes"],
        "scan --json, this machine": ["scan", "--json"],
    }
    print(f"(b) time of {runs} runs each, frozen and venv alternating: wall median (min) and CPU median, ms;")
    print(f"    the ratio is frozen / venv (budget <= {BUDGET_RATIO}x on the wall median). On a shared machine the")
    print("    wall time swings with the load: the CPU time (user + system) is the steadier figure.")
    print(f"    {'command':<28} {'frozen wall':>14} {'venv wall':>14} {'ratio':>6}   {'frozen cpu':>10} "
          f"{'venv cpu':>9} {'ratio':>6}")
    exe = str(folder / freeze.EXECUTABLE)
    for name, args in cases.items():
        warm = Runs()  # the signatures cache, the page cache, the venv's bytecode
        warm.run([exe, *args], frozen_env)
        warm.run([str(VENV_AGENTROSTER), *args], venv_env)
        frozen, venv = Runs(), Runs()
        for _ in range(runs):
            frozen.run([exe, *args], frozen_env)
            venv.run([str(VENV_AGENTROSTER), *args], venv_env)
        fw, vw = statistics.median(frozen.wall), statistics.median(venv.wall)
        fc, vc = statistics.median(frozen.cpu), statistics.median(venv.cpu)
        verdict = "within" if fw <= BUDGET_RATIO * vw else "OVER"
        print(f"    {name:<28} {fw:>7.0f} ({min(frozen.wall):>4.0f}) {vw:>7.0f} ({min(venv.wall):>4.0f}) "
              f"{fw / vw:>5.2f}x   {fc:>10.0f} {vc:>9.0f} {fc / vc:>5.2f}x  {verdict}")


def with_scapy(folder: Path, work: Path) -> None:
    """Freeze again with scapy in (AGENTROSTER_FREEZE_SCAPY=1) and print what it adds."""
    os.environ["AGENTROSTER_FREEZE_SCAPY"] = "1"
    try:
        other = freeze.freeze(work / "dist", work / "build", reuse=False, log=False)
    finally:
        del os.environ["AGENTROSTER_FREEZE_SCAPY"]
    scapy_modules = sorted(n for n in freeze.bundled_modules(other) if n == "scapy" or n.startswith("scapy."))
    added = freeze.folder_size(other) - freeze.folder_size(folder)
    added_xz = packed_size(other, "w:xz", preset=6) - packed_size(folder, "w:xz", preset=6)
    print("(c) with scapy, as the macOS and Windows builds carry it")
    print(f"    adds             {mb(added)} on disk, {mb(added_xz)} as tar.xz; {len(scapy_modules)} scapy modules")


def repeatable(work: Path) -> None:
    """Freeze twice more, into two other folders, and compare the two file by file."""
    import hashlib

    sources = freeze.source_digest()
    once = freeze.freeze(work / "once", work / "once-build", reuse=False, log=False)
    other = freeze.freeze(work / "again", work / "again-build", reuse=False, log=False)
    if freeze.source_digest() != sources:
        print("(d) the sources changed while freezing twice: run --repeat again")
        return

    def digests(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file()}

    first, second = digests(once), digests(other)
    differ = sorted(name for name in first.keys() | second.keys() if first.get(name) != second.get(name))
    print("(d) two more freezes of the same checkout, each in a folder of its own")
    print(f"    {len(first)} files: " + ("byte for byte the same" if not differ else
                                         f"{len(differ)} differ: {', '.join(differ[:10])}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command on each side (default 15)")
    parser.add_argument("--scapy", action="store_true", help="also measure a build with scapy in it")
    parser.add_argument("--repeat", action="store_true", help="also freeze again and compare the two folders")
    parser.add_argument("--no-companion", action="store_true", help="measure the endpoint's folder only")
    args = parser.parse_args()
    started = time.monotonic()
    folder = freeze.freeze(REPO / "dist", REPO / "build", log=False)
    print(f"frozen endpoint: {folder} (made or reused in {time.monotonic() - started:.1f} s)")
    companion = None
    if not args.no_companion:
        started = time.monotonic()
        companion = freeze.freeze_companion(REPO / "dist", REPO / "build", log=False)
        print(f"frozen companion: {companion} (made or reused in {time.monotonic() - started:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="agentroster-bench-frozen-") as tmp:
        xz = sizes(folder)
        if companion is not None:
            xz += sizes(companion, freeze.COMPANION)
            verdict = "within" if xz <= BUDGET_COMPRESSED_MB * 1e6 else "OVER"
            print(f"(a) both folders, tar.xz: {mb(xz)} (budget <= {BUDGET_COMPRESSED_MB} MB: {verdict})")
        speed(folder, args.runs, Path(tmp))
        if companion is not None:
            companion_start(companion, max(3, args.runs // 3))
        if args.scapy:
            with_scapy(folder, Path(tmp))
        if args.repeat:
            repeatable(Path(tmp))


if __name__ == "__main__":
    main()
