"""The WiX source of the agentroster MSI, generated from the frozen endpoint folder.

What the MSI does on a Windows PC:

- the frozen endpoint goes to ``C:\\Program Files\\agentroster`` (64-bit), every file in a component of
  its own whose GUID is a uuid5 of its path in the folder, so the same file keeps its component across
  versions and two builds of the same folder give the same tables;
- ``agentroster.exe daemon --windows-service`` is installed as the ``agentroster`` service (automatic
  start, LocalSystem), started at install, stopped at upgrade and uninstall, removed at uninstall;
- ``C:\\ProgramData\\agentroster`` (the data dir) is created;
- with the tray companion: its own frozen folder goes to ``C:\\Program Files\\agentroster\\companion``,
  and the value ``agentroster companion`` under ``HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run``
  starts ``agentroster-companion.exe`` in every user's session at log-on;
- ``COLLECTOR_URL`` and ``ENROLL_SECRET_FILE`` given to msiexec become ``collector_url`` and
  ``enroll_secret_file`` under ``HKLM\\SOFTWARE\\Policies\\agentroster``, where the daemon reads its
  managed settings; an upgrade without them keeps the values an earlier install wrote. The enroll
  secret itself is refused: every local user can read that key and msiexec's log.

wixl (msitools) writes neither component conditions, nor the service's failure actions, nor folder
permissions; ``build.py`` adds those tables after wixl has run (``EXTRA_TABLES``, ``extra_queries``).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

#: Identifies "agentroster" to Windows Installer across every version: an MSI with this UpgradeCode
#: replaces an installed one (MajorUpgrade). NEVER CHANGE IT: machines in the field would install a
#: new version beside the old one, with two services over one data dir.
UPGRADE_CODE = "6A0E5C39-2B8F-4C61-9D0B-5E0F4A7C2D18"
#: the namespace of the uuid5 component GUIDs and product codes (also never to change: a component's
#: GUID must stay the same while its path does)
GUID_NAMESPACE = uuid.UUID("0C7F3B52-96E1-4B8A-A3D4-71E2F0B95C46")

MANUFACTURER = "agentroster"
PRODUCT_NAME = "agentroster endpoint"
EXE_NAME = "agentroster.exe"
SERVICE_NAME = "agentroster"
SERVICE_DISPLAY_NAME = "agentroster endpoint"
SERVICE_DESCRIPTION = ("Finds the AI agents on this PC (coding agents, desktop apps, MCP servers) and reports "
                       "them to the organisation's agentroster collector.")
#: what the service manager runs: the daemon, hosted by the service wrapper (endpoint/service/winservice.py)
SERVICE_ARGUMENTS = "daemon --windows-service"
#: where the daemon reads managed settings (endpoint/service/_managed_windows.py, a test keeps them equal)
POLICY_KEY = r"SOFTWARE\Policies\agentroster"
#: where the MSI remembers what it wrote there, so that an upgrade without the properties keeps them
#: and a value Group Policy wrote is never taken for the MSI's own
REMEMBERED_KEY = r"SOFTWARE\agentroster\Installer"
#: msiexec property → the setting it becomes under POLICY_KEY; never the enroll secret itself
POLICY_PROPERTIES: dict[str, str] = {"COLLECTOR_URL": "collector_url", "ENROLL_SECRET_FILE": "enroll_secret_file"}
#: the data dir's security descriptor: owner Administrators, SYSTEM and Administrators only, nothing
#: inherited from C:\ProgramData (the daemon sets the same at every start: endpoint/service/_acl_windows.py)
DATA_DIR_SDDL = "O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
#: service recovery: restart after 5 s, 10 s, then every 60 s; the failure count resets after a day
RESTART_DELAYS_MS = (5_000, 10_000, 60_000)
FAILURE_RESET_S = 86_400

#: the service's event log source (endpoint/service/winservice.py logs start, stop and failures there)
EVENT_SOURCE_KEY = rf"SYSTEM\CurrentControlSet\Services\EventLog\Application\{SERVICE_NAME}"
#: pywin32's servicemanager module, which holds the messages of those events, as the freeze names it
EVENT_MESSAGE_FILE = re.compile(r"servicemanager(?:\.cp\d+-win_amd64)?\.pyd")
EVENT_SOURCE_COMPONENT_ID = "EventLogSource"

WIX_NS = "http://schemas.microsoft.com/wix/2006/wi"
EXE_FILE_ID = "AgentrosterExe"
SERVICE_COMPONENT_ID = "AgentrosterService"
DATA_DIR_ID = "DATADIR"
DATA_DIR_COMPONENT_ID = "DataDir"
INSTALL_DIR_ID = "INSTALLDIR"
#: the companion: its folder under INSTALLDIR, its executable, and the Run value that starts it at log-on
COMPANION_FOLDER = "companion"
COMPANION_EXE_NAME = "agentroster-companion.exe"
RUN_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE_NAME = "agentroster companion"
RUN_COMPONENT_ID = "CompanionRun"


class PayloadError(ValueError):
    """The payload folder cannot become an MSI (the message says what to do)."""


@dataclass(frozen=True, slots=True)
class PolicyValue:
    """One msiexec property that becomes a policy value (and the component that writes it)."""

    prop: str
    setting: str

    @property
    def component(self) -> str:
        return "Policy_" + self.prop

    @property
    def previous(self) -> str:
        return "PREVIOUS_" + self.prop

    @property
    def remember_action(self) -> str:
        return "Remember_" + self.prop


POLICY_VALUES = tuple(PolicyValue(p, s) for p, s in POLICY_PROPERTIES.items())


def msi_version(version: str) -> str:
    """The build's version as Windows Installer takes it: ``major.minor.build``, numbers only
    (0-255, 0-255, 0-65535); a Python pre- or dev-release suffix cannot be carried and is refused."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    if match is None:
        raise PayloadError(f"version {version!r}: an MSI needs major.minor.build in numbers (e.g. 1.4.2); "
                           "build from a release version")
    major, minor, build = (int(part or 0) for part in match.groups())
    if major > 255 or minor > 255 or build > 65535:
        raise PayloadError(f"version {version!r}: Windows Installer allows at most 255.255.65535")
    return f"{major}.{minor}.{build}"


def stable_guid(kind: str, name: str) -> str:
    """A GUID that depends only on what it names: a component's stays put while its path does."""
    return str(uuid.uuid5(GUID_NAMESPACE, f"{kind}:{name}")).upper()


def product_code(version: str) -> str:
    """One ProductCode per version (a major upgrade needs a new one), the same for every build of it."""
    return stable_guid("product", msi_version(version))


def _ident(prefix: str, rel: str) -> str:
    # MSI identifiers: letters, digits, '_' and '.', at most 72 characters; a path has other characters
    return f"{prefix}_{hashlib.sha256(rel.encode('utf-8')).hexdigest()[:32]}"


def payload_files(payload: Path, exe_name: str = EXE_NAME) -> list[str]:
    """The payload's files as sorted POSIX paths relative to it; ``PayloadError`` for what an MSI cannot
    hold or what a frozen build never has (symlinks, devices), and when ``exe_name`` is missing."""
    if not payload.is_dir():
        raise PayloadError(f"{payload}: not a folder; give the frozen endpoint folder (./dev package msi --payload DIR)")
    found: list[str] = []
    for top, dirnames, filenames in os.walk(payload):  # never follows a link to a folder
        for name in [*dirnames, *filenames]:
            path = Path(top, name)
            if path.is_symlink():
                rel = path.relative_to(payload).as_posix()
                raise PayloadError(f"{payload}: {rel} is a symbolic link; an MSI holds files only (freeze again "
                                   "without links, or copy the target in)")
        found += [Path(top, name).relative_to(payload).as_posix() for name in filenames]
    found.sort()
    for rel in found:
        if not (payload / rel).is_file():
            raise PayloadError(f"{payload}: {rel} is not a regular file")
        if not rel.isascii() or any(c in rel for c in '<>:"|?*\\'):
            # wixl writes the tables in one ANSI code page, and Windows forbids these characters in names
            raise PayloadError(f"{payload}: {rel!r}: an MSI's file names here must be ASCII without <>:\"|?*\\ "
                               "(rename it in the frozen build)")
    seen: dict[str, str] = {}
    for rel in found:
        other = seen.setdefault(rel.lower(), rel)
        if other != rel:  # Windows' file names ignore case: one would overwrite the other
            raise PayloadError(f"{payload}: {other} and {rel} differ only in case; Windows would install one "
                               "over the other")
    if exe_name not in found:
        if exe_name == COMPANION_EXE_NAME and "agentroster-companion" in found:
            return found  # another OS's companion, for a layout check (--foreign-payload says so)
        if exe_name == COMPANION_EXE_NAME:
            raise PayloadError(f"{payload}: no {exe_name} at the top; give the frozen companion folder "
                               "(python -m installers freeze on Windows)")
        raise PayloadError(f"{payload}: no {EXE_NAME} at the top; the payload is the frozen endpoint folder "
                           "(python -m installers freeze on Windows)")
    return found


def _el(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{WIX_NS}}}{tag}", attrs)


def wix_source(payload: Path, version: str, companion: Path | None = None) -> bytes:
    """The .wxs document (UTF-8 XML) for the frozen endpoint in ``payload`` (and the companion's folder)."""
    files = payload_files(payload)
    if COMPANION_FOLDER in {rel.split("/")[0] for rel in files if "/" in rel}:
        raise PayloadError(f"{payload}: already has a {COMPANION_FOLDER} folder; the MSI puts the companion there itself")
    companion_files = payload_files(companion, COMPANION_EXE_NAME) if companion is not None else []
    msi_ver = msi_version(version)
    ET.register_namespace("", WIX_NS)
    wix = ET.Element(f"{{{WIX_NS}}}Wix")
    product = _el(wix, "Product", Id=product_code(version), Name=PRODUCT_NAME, Language="1033", Version=msi_ver,
                  Manufacturer=MANUFACTURER, UpgradeCode=UPGRADE_CODE)
    # 500: Windows Installer 5, which reads the service and permission tables build.py adds. wixl 0.101
    # has no Platform attribute: build.py's `wixl --arch x64` makes the package 64-bit (Template x64;1033)
    _el(product, "Package", InstallerVersion="500", Compressed="yes", InstallScope="perMachine",
        Description=f"{PRODUCT_NAME} {msi_ver}", Manufacturer=MANUFACTURER,
        Comments="Finds the AI agents on this PC and reports them to the organisation's collector.")
    _el(product, "MajorUpgrade", DowngradeErrorMessage="A newer version of agentroster is already installed; "
                                                       "uninstall it first to go back to this one.")
    _el(product, "Media", Id="1", Cabinet="agentroster.cab", EmbedCab="yes")
    _launch_conditions(product)
    _remembered_properties(product)

    target = _el(product, "Directory", Id="TARGETDIR", Name="SourceDir")
    program_files = _el(target, "Directory", Id="ProgramFiles64Folder")
    install_dir = _el(program_files, "Directory", Id=INSTALL_DIR_ID, Name="agentroster")
    app_data = _el(target, "Directory", Id="CommonAppDataFolder")
    data_dir = _el(app_data, "Directory", Id=DATA_DIR_ID, Name="agentroster")

    components: list[str] = []
    dirs: dict[str, ET.Element] = {"": install_dir}
    for rel in files:
        parent_rel, _, name = rel.rpartition("/")
        parent = _directory(dirs, parent_rel)
        if rel == EXE_NAME:
            components.append(_service_component(parent, rel))
            continue
        component_id = _ident("C", rel)
        component = _el(parent, "Component", Id=component_id, Guid=stable_guid("file", rel), Win64="yes")
        _el(component, "File", Id=_ident("F", rel), Name=name, Source=rel, KeyPath="yes")
        components.append(component_id)

    companion_exe_id = ""
    for rel in companion_files:
        assert companion is not None  # companion_files is empty without it
        installed = f"{COMPANION_FOLDER}/{rel}"
        parent_rel, _, name = installed.rpartition("/")
        parent = _directory(dirs, parent_rel)
        component_id = _ident("C", installed)
        component = _el(parent, "Component", Id=component_id, Guid=stable_guid("file", installed), Win64="yes")
        # wixl reads Source relative to the payload folder (its working directory), and only so
        source = Path(os.path.relpath(Path(companion, rel).resolve(), payload.resolve())).as_posix()
        _el(component, "File", Id=_ident("F", installed), Name=name, Source=source, KeyPath="yes")
        components.append(component_id)
        if rel in (COMPANION_EXE_NAME, "agentroster-companion"):
            companion_exe_id = _ident("F", installed)
    if companion_exe_id:
        components.append(_run_component(install_dir, companion_exe_id))

    message_dll = next((rel for rel in files if EVENT_MESSAGE_FILE.fullmatch(rel.rpartition("/")[2].lower())), None)
    if message_dll is not None:
        components.append(_event_source_component(install_dir, _ident("F", message_dll)))
    data_component = _el(data_dir, "Component", Id=DATA_DIR_COMPONENT_ID, Guid=stable_guid("dir", "data"), Win64="yes")
    _el(data_component, "CreateFolder")
    components.append(DATA_DIR_COMPONENT_ID)
    for value in POLICY_VALUES:
        components.append(_policy_component(install_dir, value))

    feature = _el(product, "Feature", Id="Endpoint", Title=PRODUCT_NAME, Level="1")
    for component_id in components:
        _el(feature, "ComponentRef", Id=component_id)
    ET.indent(wix, space="  ")
    document: bytes = ET.tostring(wix, encoding="utf-8", xml_declaration=True)
    return document


def _directory(dirs: dict[str, ET.Element], rel: str) -> ET.Element:
    """The Directory element of a payload subfolder, made with its parents on first use."""
    if rel not in dirs:
        parent_rel, _, name = rel.rpartition("/")
        dirs[rel] = _el(_directory(dirs, parent_rel), "Directory", Id=_ident("D", rel), Name=name)
    return dirs[rel]


def _service_component(parent: ET.Element, exe: str) -> str:
    """agentroster.exe and the service that runs it (a service belongs to its executable's component)."""
    component = _el(parent, "Component", Id=SERVICE_COMPONENT_ID, Guid=stable_guid("file", EXE_NAME), Win64="yes")
    _el(component, "File", Id=EXE_FILE_ID, Name=EXE_NAME, Source=exe, KeyPath="yes")
    _el(component, "ServiceInstall", Id="AgentrosterServiceInstall", Name=SERVICE_NAME,
        DisplayName=SERVICE_DISPLAY_NAME, Description=SERVICE_DESCRIPTION, Type="ownProcess", Start="auto",
        Account="LocalSystem", ErrorControl="normal", Arguments=SERVICE_ARGUMENTS, Vital="yes")
    # stopped before its files are replaced (an upgrade) or removed; removed with the product
    _el(component, "ServiceControl", Id="AgentrosterServiceControl", Name=SERVICE_NAME, Start="install",
        Stop="both", Remove="uninstall", Wait="yes")
    return SERVICE_COMPONENT_ID


def _run_component(parent: ET.Element, file_id: str) -> str:
    """The Run value that starts the companion in each user's session at log-on (the machine's Run key:
    every user, no per-user install)."""
    component = _el(parent, "Component", Id=RUN_COMPONENT_ID, Guid=stable_guid("run", RUN_VALUE_NAME), Win64="yes")
    _el(component, "RegistryValue", Root="HKLM", Key=RUN_KEY, Name=RUN_VALUE_NAME, Type="string",
        Value=f'"[#{file_id}]"', KeyPath="yes")
    return RUN_COMPONENT_ID


def _event_source_component(parent: ET.Element, file_id: str) -> str:
    """The Application event log source "agentroster", whose messages pywin32's servicemanager module
    holds: without it, Event Viewer shows the service's events under "the description cannot be found"."""
    component = _el(parent, "Component", Id=EVENT_SOURCE_COMPONENT_ID, Guid=stable_guid("eventlog", SERVICE_NAME),
                    Win64="yes")
    _el(component, "RegistryValue", Root="HKLM", Key=EVENT_SOURCE_KEY, Name="EventMessageFile", Type="string",
        Value=f"[#{file_id}]", KeyPath="yes")
    # error, warning and information events
    _el(component, "RegistryValue", Root="HKLM", Key=EVENT_SOURCE_KEY, Name="TypesSupported", Type="integer",
        Value="7")
    return EVENT_SOURCE_COMPONENT_ID


def _policy_component(parent: ET.Element, value: PolicyValue) -> str:
    """The policy value from the msiexec property, and the MSI's own note of it (its key path).

    Installed only when the property has a value (a condition build.py adds): an install without it
    leaves whatever Group Policy or Intune wrote alone."""
    component = _el(parent, "Component", Id=value.component, Guid=stable_guid("policy", value.setting), Win64="yes")
    _el(component, "RegistryValue", Root="HKLM", Key=POLICY_KEY, Name=value.setting, Type="string",
        Value=f"[{value.prop}]")
    _el(component, "RegistryValue", Root="HKLM", Key=REMEMBERED_KEY, Name=value.setting, Type="string",
        Value=f"[{value.prop}]", KeyPath="yes")
    return value.component


def _launch_conditions(product: ET.Element) -> None:
    # VersionNT64 is set on 64-bit Windows only; 603 is what Windows Installer reports for Windows 8.1,
    # 10 and 11 (and Server 2012 R2 and later) without a manifest
    supported = _el(product, "Condition", Message="agentroster needs 64-bit Windows 10, Windows Server 2016 or "
                                                  "later.")
    supported.text = "Installed OR VersionNT64 >= 603"
    no_secret = _el(product, "Condition",
                    Message="Do not give the enroll secret to msiexec: every local user can read the policy key "
                            "and the install log. Write it to a file only SYSTEM and Administrators can read and "
                            "pass ENROLL_SECRET_FILE=<that file> (see docs/endpoint-settings.md).")
    no_secret.text = "NOT ENROLL_SECRET"


def _remembered_properties(product: ET.Element) -> None:
    """For each policy property: what an earlier install wrote, taken when msiexec does not give it."""
    for value in POLICY_VALUES:
        prop = _el(product, "Property", Id=value.previous)
        _el(prop, "RegistrySearch", Id=f"Search_{value.prop}", Root="HKLM", Key=REMEMBERED_KEY,
            Name=value.setting, Type="raw", Win64="yes")
        _el(product, "CustomAction", Id=value.remember_action, Property=value.prop, Value=f"[{value.previous}]")
    # the execute sequence only: it runs AppSearch again and decides the components' conditions (wixl
    # would put these after ExecuteAction in the UI sequence, where they come too late to matter)
    sequence = _el(product, "InstallExecuteSequence")
    for value in POLICY_VALUES:
        custom = _el(sequence, "Custom", Action=value.remember_action, After="AppSearch")
        custom.text = f"NOT {value.prop} AND {value.previous}"


# -- what wixl cannot write: build.py imports these tables into the MSI afterwards -----------------------

#: IDT files (tab-separated: the columns, their types, the table and its key, then rows) for
#: Windows Installer 5's service configuration and folder permission tables
def extra_tables() -> dict[str, str]:
    delays = "[~]".join(str(ms) for ms in RESTART_DELAYS_MS)
    restarts = "[~]".join("1" for _ in RESTART_DELAYS_MS)  # 1 = restart the service
    install_and_reinstall = "5"  # msidbServiceConfigEventInstall | msidbServiceConfigEventReinstall
    return {
        "MsiServiceConfigFailureActions": _idt(
            ("MsiServiceConfigFailureActions", "Name", "Event", "ResetPeriod", "RebootMessage", "Command", "Actions",
             "DelayActions", "Component_"),
            ("s72", "l255", "i2", "I4", "L255", "L255", "S255", "S255", "s72"),
            [("AgentrosterRestart", SERVICE_NAME, install_and_reinstall, str(FAILURE_RESET_S), "", "", restarts,
              delays, SERVICE_COMPONENT_ID)]),
        # ConfigType 4 = SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: a service that stops with an error (not only
        # one that crashes) is restarted too. ConfigType 3 = SERVICE_CONFIG_DELAYED_AUTO_START_INFO: still
        # an automatic start, a little after boot, so it does not slow the employee's log-on
        "MsiServiceConfig": _idt(
            ("MsiServiceConfig", "Name", "Event", "ConfigType", "Argument", "Component_"),
            ("s72", "l255", "i2", "i4", "S0", "s72"),
            [("AgentrosterFailureFlag", SERVICE_NAME, install_and_reinstall, "4", "1", SERVICE_COMPONENT_ID),
             ("AgentrosterDelayedStart", SERVICE_NAME, install_and_reinstall, "3", "1", SERVICE_COMPONENT_ID)]),
        "MsiLockPermissionsEx": _idt(
            ("MsiLockPermissionsEx", "LockObject", "Table", "SDDLText", "Condition"),
            ("s72", "s72", "s32", "s0", "S255"),
            [("DataDirAcl", DATA_DIR_ID, "CreateFolder", DATA_DIR_SDDL, "")]),
    }


def _idt(columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    for row in rows:
        if any(c in cell for cell in row for c in "\t\r\n"):
            raise ValueError("an IDT cell holds a tab or a line break")
    lines = ["\t".join(columns), "\t".join(types), f"{columns[0]}\t{columns[0]}"]
    lines += ["\t".join(row) for row in rows]
    return "\r\n".join(lines) + "\r\n"


def extra_queries() -> list[str]:
    """SQL run on the built MSI: the policy components' conditions, the properties msiexec may pass to
    the installing service (SecureCustomProperties), and the action that applies the service tables."""
    queries = [f"UPDATE `Component` SET `Condition` = '{value.prop}' WHERE `Component` = '{value.component}'"
               for value in POLICY_VALUES]
    # InstallServices is 5800 and StartServices 5900 in wixl's sequence; MsiConfigureServices goes between
    queries.append("INSERT INTO `InstallExecuteSequence` (`Action`, `Sequence`) VALUES ('MsiConfigureServices', 5850)")
    return queries


def secure_properties() -> list[str]:
    return [value.prop for value in POLICY_VALUES] + [value.previous for value in POLICY_VALUES]
