"""The .rpm: the payload, the systemd unit and the managed config, built with ``rpmbuild``.

``build(payload, out, version, companion=None)`` writes ``out/agentroster-<version>-1.<arch>.rpm`` and returns it.
The frozen build is copied as it is: no dependency generator (it would read the bundled libraries
as things the package provides), no stripping and no debuginfo (either would break the frozen
executable). ``SOURCE_DATE_EPOCH`` makes it repeatable when it is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from installers.linux import common
from installers.linux.common import NAME, PackageError

RELEASE = "1"


def _source_date() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else int(time.time())


def build(payload: Path, out: Path, version: str, *, companion: Path | None = None) -> list[Path]:
    """Build the .rpm of ``payload`` (a folder with the frozen ``agentroster`` at its top) into ``out``, with
    the tray companion when ``companion`` (its frozen folder) is given."""
    common.check_version(version)
    info = common.inspect_payload(payload, companion)
    if shutil.which("rpmbuild") is None:
        raise PackageError("rpmbuild is not installed (apt install rpm, or dnf install rpm-build)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agentroster-rpm-") as tmp:
        top = Path(tmp)
        stage = top / "stage"
        stage.mkdir()
        common.stage(info, stage)
        spec = top / f"{NAME}.spec"
        spec.write_text(spec_text(info, version, stage), encoding="utf-8")
        defines = {
            "_topdir": str(top / "rpmbuild"),
            "_rpmdir": str(top / "rpms"),
            "_build_name_fmt": "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm",
            "_build_id_links": "none",
            "debug_package": "%{nil}",
            "__os_install_post": "%{nil}",
            "_binary_payload": "w6.xzdio",
        }
        if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
            defines |= {"use_source_date_epoch_as_buildtime": "1", "clamp_mtime_to_source_date_epoch": "1",
                        "_buildhost": "agentroster"}
        argv = ["rpmbuild", "-bb", "--quiet", "--target", info.rpm_arch]
        for name, value in defines.items():
            argv += ["--define", f"{name} {value}"]
        done = subprocess.run([*argv, str(spec)], capture_output=True, text=True)
        if done.returncode != 0:
            raise PackageError(f"rpmbuild failed: {done.stderr.strip()[-2000:]}")
        built = top / "rpms" / f"{NAME}-{version}-{RELEASE}.{info.rpm_arch}.rpm"
        target = out / built.name
        shutil.copyfile(built, target)
    return [target]


def spec_text(info: common.Payload, version: str, stage: Path) -> str:
    """The spec file: %install copies the staged tree, the scriptlets come from files/rpm/."""
    # written as rpm's own dependency generator writes them (by soname and symbol version), so that any
    # distribution's package that provides them will do (libpcap is libpcap1 on openSUSE)
    requires = [f"libc.so.6(GLIBC_{info.min_glibc})(64bit)" if info.min_glibc else "libc.so.6()(64bit)",
                "libpcap.so.1()(64bit)"]
    stamp = time.strftime("%a %b %d %Y", time.gmtime(_source_date()))
    lines = [
        f"Name: {NAME}",
        f"Version: {version}",
        f"Release: {RELEASE}",
        f"Summary: {common.SUMMARY[0].upper()}{common.SUMMARY[1:]}",
        f"License: {common.LICENSE}",
        "Group: System Environment/Daemons",
        f"Packager: {common.MAINTAINER}",
        "AutoReqProv: no",
        *(f"Requires: {r}" for r in requires),
        # the companion's desktop libraries, by soname as rpm writes them: weak, as in the .deb
        *(f"Recommends: {name}()(64bit)" for name in common.desktop_libraries(info.companion)),
        "",
        "%description",
        common.DESCRIPTION,
        "",
        "%install",
        f"cp -a {stage}/. %{{buildroot}}/",
        "",
    ]
    for section, name in (("pre", "pre.sh"), ("post", "post.sh"), ("preun", "preun.sh"), ("postun", "postun.sh")):
        lines += [f"%{section}", common.script(f"rpm/{name}", info).replace("%", "%%"), ""]
    lines += [
        "%files",
        "%defattr(-,root,root,-)",
        f"/{common.INSTALL_DIR}",
        f"/usr/bin/{NAME}",
        f"/{common.UNIT_PATH}",
        "%dir /etc/agentroster",
        # kept on upgrade; a changed file is saved as endpoint.toml.rpmsave on erase
        f"%config(noreplace) %attr(0600,root,root) /{common.CONFIG_PATH}",
        # the companion is inside /usr/lib/agentroster; its autostart entry is kept when an admin edited it
        *([f"/usr/bin/{common.COMPANION_NAME}", f"%config(noreplace) /{common.AUTOSTART_PATH}"]
          if info.companion is not None else []),
        "",
        "%changelog",
        f"* {stamp} {common.MAINTAINER} - {version}-{RELEASE}",
        f"- agentroster {version}.",
        "",
    ]
    return "\n".join(lines)
