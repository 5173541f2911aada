"""Builds the Windows MSI from the frozen endpoint folder, on Linux, with wixl and msibuild (msitools).

``build(payload, out, version, companion=None)`` writes ``agentroster-<version>-x64.msi`` and the Group Policy templates
(``policy/agentroster.admx``, ``policy/en-US/agentroster.adml``) under ``out`` and returns their paths.

wixl (0.101, Debian's) writes the MSI from ``wxs.wix_source``; it has no element for a component's
condition, the service's failure actions or a folder's permissions, so msibuild then imports Windows
Installer 5's ``MsiServiceConfigFailureActions``, ``MsiServiceConfig`` and ``MsiLockPermissionsEx`` tables
and runs a few SQL updates (``wxs.extra_tables``, ``wxs.extra_queries``). The result's tables depend only
on the payload and the version: the package code (a summary field, not a table) is new at each build,
as Windows Installer wants of two different files.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from installers.windows import admx, wxs

TOOLS_HINT = "install them with: apt-get install wixl msitools (Debian, Ubuntu)"


class BuildError(RuntimeError):
    """The MSI could not be built; the message says what to do."""


def msi_name(version: str) -> str:
    return f"agentroster-{wxs.msi_version(version)}-x64.msi"


def build(payload: Path, out: Path, version: str, *, companion: Path | None = None) -> list[Path]:
    """The MSI and the ADMX/ADML templates for the frozen endpoint in ``payload`` (with the tray companion
    when ``companion``, its frozen folder, is given), written under ``out``."""
    payload, out = Path(payload).resolve(), Path(out)
    companion = Path(companion).resolve() if companion is not None else None
    try:
        source = wxs.wix_source(payload, version, companion)
    except wxs.PayloadError as exc:
        raise BuildError(str(exc)) from None
    wixl, msibuild = _tool("wixl"), _tool("msibuild")
    out.mkdir(parents=True, exist_ok=True)
    target = out / msi_name(version)
    with tempfile.TemporaryDirectory(prefix="agentroster-msi-") as tmp:
        work = Path(tmp)
        wxs_path = work / "agentroster.wxs"
        wxs_path.write_bytes(source)
        msi = work / target.name
        # wixl looks for each File's Source in the current directory: the payload's own paths
        _run([wixl, "--arch", "x64", "--output", str(msi), str(wxs_path)], cwd=payload)
        for table, idt in wxs.extra_tables().items():
            idt_path = work / f"{table}.idt"
            idt_path.write_text(idt, encoding="ascii", newline="")
            _run([msibuild, str(msi), "-i", str(idt_path)], cwd=work)
        for query in [*wxs.extra_queries(), _secure_properties_query(msi)]:
            _run([msibuild, str(msi), "-q", query], cwd=work)
        shutil.move(msi, target)
    return [target, *admx.write_templates(out / "policy")]


def _secure_properties_query(msi: Path) -> str:
    """SecureCustomProperties with the policy properties added to what wixl put there: only secure
    properties reach the installing service when msiexec runs from a user's session (Intune does not)."""
    table = _run([_tool("msiinfo"), "export", str(msi), "Property"], cwd=msi.parent)
    current: list[str] = []
    for line in table.splitlines()[3:]:
        name, _, value = line.partition("\t")
        if name == "SecureCustomProperties":
            current = [p for p in value.strip().split(";") if p]
    merged = ";".join(dict.fromkeys([*current, *wxs.secure_properties()]))
    if current:
        return f"UPDATE `Property` SET `Value` = '{merged}' WHERE `Property` = 'SecureCustomProperties'"
    return f"INSERT INTO `Property` (`Property`, `Value`) VALUES ('SecureCustomProperties', '{merged}')"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"{name} is not on PATH; the MSI is built with wixl and msibuild: {TOOLS_HINT}")
    return found


def _run(argv: Sequence[str], *, cwd: Path) -> str:
    done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    # wixl exits 0 after a GLib warning that it ignored an attribute it does not know (Package/@Platform
    # in 0.101), or after a "CRITICAL" that left the database incomplete: either is a wrong MSI
    if done.returncode != 0 or "WARNING" in done.stderr or "CRITICAL" in done.stderr:
        said = (done.stderr or done.stdout).strip()[-2000:]
        raise BuildError(f"{Path(argv[0]).name} failed (exit {done.returncode}): {said}")
    return done.stdout
