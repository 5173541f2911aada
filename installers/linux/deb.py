"""The .deb: the payload, the systemd unit and the managed config, built with ``dpkg-deb``.

``build(payload, out, version, companion=None)`` writes ``out/agentroster_<version>_<arch>.deb`` and returns it. The
package is native (no Debian revision), owned by root whoever builds it (``--root-owner-group``), and
repeatable: ``SOURCE_DATE_EPOCH`` sets every timestamp when it is set.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from installers.linux import common
from installers.linux.common import NAME, PackageError

DOC_DIR = f"usr/share/doc/{NAME}"
OVERRIDES = f"usr/share/lintian/overrides/{NAME}"

# Lintian tags accepted (tag and context → why), written into the package's override file.
_LINTIAN_OVERRIDES = {
    "no-manual-page": "agentroster --help describes every command",
    "maintainer-script-calls-systemctl": "one package for Debian and its derivatives, built without debhelper; "
                                         "every call is guarded for a chroot or a container without systemd",
    f"non-standard-file-perm 0600 != 0644 [{common.CONFIG_PATH}]":
        "the managed config may name the collector and its CA; only root (the daemon) reads it",
}
_BUNDLED = "the endpoint is one self-contained frozen build (PyInstaller), the same on every distribution"
# ... and those a real frozen build adds: its own Python and the libraries it was frozen with.
_FROZEN_LINTIAN_OVERRIDES = {
    f"embedded-library * [{common.INSTALL_DIR}/_internal/*]": f"{_BUNDLED}, with the libraries it was tested with",
    f"custom-library-search-path * [{common.INSTALL_DIR}/_internal/*]":
        f"{_BUNDLED}: its loader finds the bundled libraries; a RUNPATH left by the build machine's Python "
        "is never reached first",
    f"library-not-linked-against-libc [{common.INSTALL_DIR}/_internal/*]":
        "Python extension modules: they take libc from the bundled Python that loads them",
    f"shared-library-lacks-prerequisites [{common.INSTALL_DIR}/_internal/*]":
        "Python extension modules: the bundled Python that loads them provides what they use",
    f"hardening-no-pie [{common.INSTALL_DIR}/{NAME}]": "the PyInstaller bootloader, built by PyInstaller as it is",
}


def build(payload: Path, out: Path, version: str, *, companion: Path | None = None, compress: bool = True) -> list[Path]:
    """Build the .deb of ``payload`` (a folder with the frozen ``agentroster`` at its top) into ``out``, with
    the tray companion when ``companion`` (its frozen folder) is given. ``compress=False`` packs the files with
    gzip's quickest level instead of xz (the same package otherwise): xz takes a minute over the two
    frozen folders, which a check of the package's contents does not need."""
    common.check_version(version)
    info = common.inspect_payload(payload, companion)
    if shutil.which("dpkg-deb") is None:
        raise PackageError("dpkg-deb is not installed (apt install dpkg)")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{NAME}_{version}_{info.deb_arch}.deb"
    with tempfile.TemporaryDirectory(prefix="agentroster-deb-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        common.stage(info, root)
        _docs(root, version, info)
        _control(root, info, version)
        # dpkg-deb takes SOURCE_DATE_EPOCH from the environment for its timestamps
        done = subprocess.run(["dpkg-deb", "--root-owner-group", *(["-Zxz"] if compress else ["-Zgzip", "-z1"]),
                               "--build", str(root), str(target)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise PackageError(f"dpkg-deb failed: {done.stderr.strip()}")
    return [target]


def _source_date() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else int(time.time())


def lintian_overrides(info: common.Payload) -> dict[str, str]:
    """The lintian tags accepted for this payload, with why."""
    if not info.has_elf:
        return dict(_LINTIAN_OVERRIDES)
    frozen = dict(_FROZEN_LINTIAN_OVERRIDES)
    if info.companion is not None:
        # the companion's folder is a frozen build of its own, with the same reasons
        for tag, reason in _FROZEN_LINTIAN_OVERRIDES.items():
            frozen[tag.replace(f"[{common.INSTALL_DIR}/_internal/", f"[{common.COMPANION_DIR}/_internal/")
                   .replace(f"[{common.INSTALL_DIR}/{NAME}]", f"[{common.COMPANION_DIR}/{common.COMPANION_NAME}]")] = reason
    return _LINTIAN_OVERRIDES | frozen


def _docs(root: Path, version: str, info: common.Payload) -> None:
    doc = root / DOC_DIR
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {NAME}\n"
        "\n"
        "Files: *\n"
        f"Copyright: {time.gmtime(_source_date()).tm_year} the agentroster authors\n"
        f"License: {common.LICENSE}\n"
        " On Debian systems, the full text of the Apache License 2.0 is in\n"
        " /usr/share/common-licenses/Apache-2.0.\n",
        encoding="utf-8")
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(_source_date()))
    changelog = (f"{NAME} ({version}) unstable; urgency=medium\n\n"
                 f"  * agentroster {version}.\n\n"
                 f" -- {common.MAINTAINER}  {stamp}\n")
    # mtime 0 and no name in the header: the same input gives the same bytes
    with open(doc / "changelog.gz", "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(changelog.encode("utf-8"))
    overrides = root / OVERRIDES
    overrides.parent.mkdir(parents=True)
    overrides.write_text("".join(f"# {reason}\n{NAME}: {tag}\n" for tag, reason in lintian_overrides(info).items()),
                         encoding="utf-8")
    for path in [doc, overrides.parent.parent, overrides.parent, *doc.iterdir(), overrides]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _installed_kib(root: Path) -> int:
    # as dpkg-gencontrol counts: each file rounded up to a KiB, each link and folder one
    total = 0
    for path in root.rglob("*"):
        if path.relative_to(root).parts[0] == "DEBIAN":
            continue
        total += 1 if path.is_symlink() or path.is_dir() else -(-path.stat().st_size // 1024)
    return total


def _control(root: Path, info: common.Payload, version: str) -> None:
    debian = root / "DEBIAN"
    debian.mkdir()
    depends = [f"libc6 (>= {info.min_glibc})" if info.min_glibc else "libc6", "libpcap0.8"]
    description = "\n".join(" " + (line or ".") for line in common.DESCRIPTION.splitlines())
    # the companion's desktop libraries: recommended, so a server without a desktop needs none of them
    recommends = sorted({common.DESKTOP_LIBRARIES[name] for name in common.desktop_libraries(info.companion)})
    fields = {
        "Package": NAME,
        "Version": version,
        "Architecture": info.deb_arch,
        "Maintainer": common.MAINTAINER,
        "Installed-Size": str(_installed_kib(root)),
        "Depends": ", ".join(depends),
        **({"Recommends": ", ".join(recommends)} if recommends else {}),
        "Section": "admin",
        "Priority": "optional",
        "Description": f"{common.SUMMARY}\n{description}",
    }
    (debian / "control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()), encoding="utf-8")
    conffiles = [common.CONFIG_PATH] + ([common.AUTOSTART_PATH] if info.companion is not None else [])
    (debian / "conffiles").write_text("".join(f"/{path}\n" for path in conffiles), encoding="utf-8")
    for name in ("preinst", "postinst", "prerm", "postrm"):
        path = debian / name
        path.write_text(common.script(f"deb/{name}", info), encoding="utf-8")
        path.chmod(0o755)
    sums = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(root).as_posix()
        if not relative.startswith("DEBIAN/"):
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {relative}\n")  # dpkg's format
    (debian / "md5sums").write_text("".join(sums), encoding="utf-8")
    for path in debian.iterdir():
        if path.name not in ("preinst", "postinst", "prerm", "postrm"):
            path.chmod(0o644)
    debian.chmod(0o755)
