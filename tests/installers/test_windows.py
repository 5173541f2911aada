"""The Windows installer: the MSI wixl builds (its tables read back with msiinfo, its files with
msiextract), the ADMX/ADML templates (each policy's value read by the daemon's own registry source), the
service wrapper's host, and the Windows workflow.

What cannot run here: Windows Installer itself (msiexec), the service manager and pywin32. The tables
are what msiexec acts on, so they are checked row by row; the service wrapper's pywin32 glue
(``winservice._serve``) runs on Windows only, and its host is tested with a real daemon below.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from endpoint.service import winservice
from endpoint.service._acl_windows import DATA_DIR_SDDL
from endpoint.service._managed_windows import (
    POLICY_KEY,
    REG_DWORD,
    REG_MULTI_SZ,
    REG_SZ,
    DictRegistry,
    WindowsManagedSource,
)
from endpoint.service.settings import Settings, load_settings
from endpoint.service.settings_table import MANAGED_SETTINGS
from installers.windows import admx, wxs
from installers.windows.build import BuildError, build, msi_name

ROOT = Path(__file__).resolve().parents[2]
MSI_TOOLS = ("wixl", "msibuild", "msiinfo", "msiextract")
needs_msitools = pytest.mark.skipif(any(shutil.which(t) is None for t in MSI_TOOLS),
                                    reason="wixl and msitools are needed (apt-get install wixl msitools)")

PAYLOAD_FILES = {
    "agentroster.exe": b"MZ fake agentroster.exe for the MSI's layout\n",
    "python311.dll": b"MZ fake python dll\n",
    "_internal/base_library.zip": b"PK fake\n",
    "_internal/signatures/packs/agents.yaml": b"signatures: []\n",
    "_internal/certifi/cacert.pem": b"-----BEGIN CERTIFICATE-----\nfake\n",
    "_internal/Lib Folder With Spaces/a long module name.pyd": b"MZ fake pyd\n",
    "_internal/win32/servicemanager.pyd": b"MZ fake pywin32 servicemanager\n",
}


def make_payload(folder: Path, files: dict[str, bytes] = PAYLOAD_FILES) -> Path:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def msiinfo(*args: str) -> str:
    return subprocess.run(["msiinfo", *args], check=True, capture_output=True, text=True, timeout=60).stdout


def table(msi: Path, name: str) -> list[dict[str, str]]:
    """A table's rows by column name, as msiinfo exports it (IDT: columns, types, keys, then rows)."""
    lines = msiinfo("export", str(msi), name).splitlines()
    columns = lines[0].split("\t")
    return [dict(zip(columns, line.split("\t"), strict=False)) for line in lines[3:] if line]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    if any(shutil.which(t) is None for t in MSI_TOOLS):
        pytest.skip("wixl and msitools are needed (apt-get install wixl msitools)")
    base = tmp_path_factory.mktemp("msi")
    payload = make_payload(base / "payload")
    return payload, base / "out", build(payload, base / "out", "1.4.2")


@pytest.fixture(scope="module")
def msi(built: tuple[Path, Path, list[Path]]) -> Path:
    return built[2][0]


# -- the MSI ---------------------------------------------------------------------------------------------


@needs_msitools
def test_build_writes_the_msi_and_the_policy_templates(built):
    _, out, paths = built
    assert paths == [out / "agentroster-1.4.2-x64.msi", out / "policy" / "agentroster.admx",
                     out / "policy" / "en-US" / "agentroster.adml"]
    assert all(p.is_file() for p in paths)
    info = msiinfo("suminfo", str(paths[0]))
    assert "Template: x64;1033" in info  # a 64-bit package
    assert "Version: 500" in info  # Windows Installer 5: the service and permission tables


@needs_msitools
def test_every_payload_file_is_in_its_own_component_with_a_stable_guid(msi):
    files = table(msi, "File")
    components = {row["Component"]: row for row in table(msi, "Component")}
    directories = {row["Directory"]: row for row in table(msi, "Directory")}

    def full_path(directory: str) -> str:
        parts = []
        while directory not in ("ProgramFiles64Folder", "CommonAppDataFolder", "TARGETDIR"):
            row = directories[directory]
            parts.append(row["DefaultDir"].split("|")[-1])  # "short|long": the long name
            directory = row["Directory_Parent"]
        return "/".join([f"[{directory}]", *reversed(parts)])

    placed = {}
    for row in files:
        component = components[row["Component_"]]
        assert component["KeyPath"] == row["File"]
        assert int(component["Attributes"]) & 256  # msidbComponentAttributes64bit
        placed[full_path(component["Directory_"]) + "/" + row["FileName"].split("|")[-1]] = component["ComponentId"]
    expected = {f"[ProgramFiles64Folder]/agentroster/{rel}": "{" + wxs.stable_guid("file", rel) + "}"
                for rel in PAYLOAD_FILES}
    assert placed == expected
    assert len({row["Component_"] for row in files}) == len(PAYLOAD_FILES)


@needs_msitools
def test_msiextract_gives_back_the_payload(built, tmp_path):
    payload, _, paths = built
    subprocess.run(["msiextract", "-C", str(tmp_path), str(paths[0])], check=True, capture_output=True, timeout=60)
    got = {p.relative_to(tmp_path / "agentroster").as_posix(): p.read_bytes()
           for p in (tmp_path / "agentroster").rglob("*") if p.is_file()}
    assert got == PAYLOAD_FILES


@needs_msitools
def test_the_service_is_installed_auto_start_as_localsystem_and_controlled(msi):
    [service] = table(msi, "ServiceInstall")
    assert service["Name"] == "agentroster"
    assert service["StartType"] == "2"  # SERVICE_AUTO_START
    assert service["ServiceType"] == "16"  # SERVICE_WIN32_OWN_PROCESS
    assert service["ErrorControl"] == "1"  # SERVICE_ERROR_NORMAL
    assert service["StartName"] == "LocalSystem" and service["Password"] == ""
    assert service["Arguments"] == "daemon --windows-service"
    assert service["Description"]
    assert service["Component_"] == "AgentrosterService"
    exe = next(row for row in table(msi, "File") if row["FileName"].split("|")[-1] == "agentroster.exe")
    assert exe["Component_"] == "AgentrosterService"  # ServiceInstall runs its component's key file

    [control] = table(msi, "ServiceControl")
    event = int(control["Event"])
    install_start, install_stop, uninstall_stop, uninstall_delete = 0x1, 0x2, 0x20, 0x80
    assert event == install_start | install_stop | uninstall_stop | uninstall_delete
    assert control["Name"] == "agentroster" and control["Wait"] == "1"


@needs_msitools
def test_failure_actions_restart_the_service(msi):
    [failure] = table(msi, "MsiServiceConfigFailureActions")
    assert failure["Name"] == "agentroster" and failure["Component_"] == "AgentrosterService"
    assert failure["Actions"].split("[~]") == ["1", "1", "1"]  # SC_ACTION_RESTART each time
    assert failure["DelayActions"].split("[~]") == ["5000", "10000", "60000"]
    assert failure["ResetPeriod"] == "86400"
    assert int(failure["Event"]) & 1  # at install
    configs = {row["ConfigType"]: row for row in table(msi, "MsiServiceConfig")}
    assert configs["4"]["Argument"] == "1"  # SERVICE_CONFIG_FAILURE_ACTIONS_FLAG on
    assert configs["3"]["Argument"] == "1"  # SERVICE_CONFIG_DELAYED_AUTO_START_INFO: auto, after boot
    assert all(row["Name"] == "agentroster" and int(row["Event"]) & 1 for row in configs.values())
    sequence = {row["Action"]: int(row["Sequence"]) for row in table(msi, "InstallExecuteSequence")}
    assert sequence["InstallServices"] < sequence["MsiConfigureServices"] < sequence["StartServices"]


@needs_msitools
def test_the_data_dir_is_created_for_system_and_administrators_only(msi):
    directories = {row["Directory"]: row for row in table(msi, "Directory")}
    assert directories["DATADIR"]["Directory_Parent"] == "CommonAppDataFolder"
    assert directories["DATADIR"]["DefaultDir"] == "agentroster"
    assert {(r["Directory_"], r["Component_"]) for r in table(msi, "CreateFolder")} == {("DATADIR", "DataDir")}
    [lock] = table(msi, "MsiLockPermissionsEx")
    assert (lock["LockObject"], lock["Table"]) == ("DATADIR", "CreateFolder")
    assert lock["SDDLText"] == DATA_DIR_SDDL  # what the daemon sets at every start, too
    aces = lock["SDDLText"].split("D:", 1)[1]
    for who in (";BU)", ";AU)", ";WD)", ";IU)", ";CO)"):  # Users, Authenticated Users, Everyone, …
        assert who not in aces
    assert "PAI" in lock["SDDLText"]  # protected: nothing inherited from C:\ProgramData


@needs_msitools
def test_the_policy_key_gets_msiexec_properties_and_never_the_secret(msi):
    registry = table(msi, "Registry")
    policy = {row["Name"]: row for row in registry if row["Key"] == POLICY_KEY}
    assert set(policy) == {"collector_url", "enroll_secret_file"}
    assert policy["collector_url"]["Value"] == "[COLLECTOR_URL]"
    assert policy["enroll_secret_file"]["Value"] == "[ENROLL_SECRET_FILE]"
    assert all(row["Root"] == "2" for row in registry)  # HKLM
    assert not any("secret" in row["Name"] and "file" not in row["Name"] for row in registry)
    assert not any("ENROLL_SECRET]" in row["Value"] for row in registry)
    components = {row["Component"]: row for row in table(msi, "Component")}
    for row in policy.values():
        component = components[row["Component_"]]
        # written only when msiexec was given the property: nothing overwrites what Group Policy set
        assert component["Condition"] in ("COLLECTOR_URL", "ENROLL_SECRET_FILE")
        assert f"[{component['Condition']}]" == row["Value"]
        assert int(component["Attributes"]) & 256  # the 64-bit registry view, where the daemon reads
    conditions = {row["Condition"]: row["Description"] for row in table(msi, "LaunchCondition")}
    assert "NOT ENROLL_SECRET" in conditions and "ENROLL_SECRET_FILE" in conditions["NOT ENROLL_SECRET"]
    secure = next(r["Value"] for r in table(msi, "Property") if r["Property"] == "SecureCustomProperties")
    assert {"COLLECTOR_URL", "ENROLL_SECRET_FILE"} <= set(secure.split(";"))


@needs_msitools
def test_the_services_event_log_source_points_at_pywin32s_messages(msi):
    rows = {row["Name"]: row for row in table(msi, "Registry") if row["Key"] == wxs.EVENT_SOURCE_KEY}
    message_file = next(row["File"] for row in table(msi, "File") if row["FileName"] == "servicemanager.pyd")
    assert rows["EventMessageFile"]["Value"] == f"[#{message_file}]"  # the file's installed path
    assert rows["TypesSupported"]["Value"] == "#7"  # a REG_DWORD: error, warning, information
    assert all(row["Root"] == "2" for row in rows.values())


def test_without_pywin32s_messages_there_is_no_event_log_source(tmp_path):
    files = {rel: data for rel, data in PAYLOAD_FILES.items() if "servicemanager" not in rel}
    source = wxs.wix_source(make_payload(tmp_path / "payload", files), "1.0.0")
    assert wxs.EVENT_SOURCE_KEY.encode() not in source
    assert wxs.EVENT_SOURCE_KEY.encode() in wxs.wix_source(make_payload(tmp_path / "full"), "1.0.0")


@needs_msitools
def test_an_upgrade_without_the_properties_keeps_what_the_last_install_wrote(msi):
    searches = {row["Signature_"]: row for row in table(msi, "RegLocator")}
    app_search = {row["Property"]: row["Signature_"] for row in table(msi, "AppSearch")}
    actions = {row["Action"]: row for row in table(msi, "CustomAction")}
    sequence = {row["Action"]: row for row in table(msi, "InstallExecuteSequence")}
    for prop in ("COLLECTOR_URL", "ENROLL_SECRET_FILE"):
        locator = searches[app_search[f"PREVIOUS_{prop}"]]
        assert locator["Key"] == wxs.REMEMBERED_KEY and locator["Root"] == "2"
        assert int(locator["Type"]) & 16  # msidbLocatorType64bit
        action = actions[f"Remember_{prop}"]
        assert int(action["Type"]) & 0x3F == 51 and action["Source"] == prop  # set a property
        assert action["Target"] == f"[PREVIOUS_{prop}]"
        assert sequence[f"Remember_{prop}"]["Condition"] == f"NOT {prop} AND PREVIOUS_{prop}"
        assert int(sequence["AppSearch"]["Sequence"]) < int(sequence[f"Remember_{prop}"]["Sequence"]) \
            < int(sequence["CostFinalize"]["Sequence"])  # before component conditions are evaluated
        assert f"Remember_{prop}" not in {row["Action"] for row in table(msi, "InstallUISequence")}


@needs_msitools
def test_product_version_upgrade_code_and_major_upgrade(msi):
    props = {row["Property"]: row["Value"] for row in table(msi, "Property")}
    assert props["ProductVersion"] == "1.4.2"
    assert props["UpgradeCode"] == "{6A0E5C39-2B8F-4C61-9D0B-5E0F4A7C2D18}"  # frozen: never changes
    assert props["ProductCode"] == "{" + wxs.product_code("1.4.2") + "}"
    assert props["ALLUSERS"] == "1"
    upgrades = table(msi, "Upgrade")
    assert {row["UpgradeCode"] for row in upgrades} == {props["UpgradeCode"]}
    assert {row["ActionProperty"] for row in upgrades} == {"WIX_UPGRADE_DETECTED", "WIX_DOWNGRADE_DETECTED"}
    assert "RemoveExistingProducts" in {row["Action"] for row in table(msi, "InstallExecuteSequence")}


@needs_msitools
def test_two_builds_of_the_same_folder_have_the_same_tables(built, tmp_path):
    payload, _, paths = built
    again = build(payload, tmp_path / "again", "1.4.2")
    names = sorted(set(msiinfo("tables", str(paths[0])).split()) - {"_SummaryInformation", "_ForceCodepage"})
    assert names == sorted(set(msiinfo("tables", str(again[0])).split()) - {"_SummaryInformation", "_ForceCodepage"})
    for name in names:
        assert msiinfo("export", str(paths[0]), name) == msiinfo("export", str(again[0]), name), name
    assert again[1].read_bytes() == paths[1].read_bytes() and again[2].read_bytes() == paths[2].read_bytes()


# -- the MSI through an installer engine: Wine's msiexec -------------------------------------------------
# Windows Installer does not run on Linux; Wine's implementation of it does, and acts on the same tables
# (launch conditions, AppSearch, custom actions, component conditions, major upgrades, ServiceInstall).
# It has no Windows Installer 5 tables (failure actions, folder permissions: read back above instead),
# and it cannot start the fake agentroster.exe as a service, so the copy it installs drops the
# start-at-install bit of the ServiceControl row; every other row is the built MSI's.

POLICY = r"HKLM\SOFTWARE\Policies\agentroster"
SERVICE_KEY = r"HKLM\System\CurrentControlSet\Services\agentroster"
UNINSTALL_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"


@dataclass
class Key:
    """A registry key as ``reg query`` prints it: its values, name → (type, data), and its subkeys."""

    values: dict[str, tuple[str, str]]
    subkeys: set[str]


class Wine:
    """msiexec and reg in a Wine prefix of the test's own (each wine command takes a few seconds: they
    are batched)."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.env = {**os.environ, "WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "DISPLAY": "",
                    "WINEDLLOVERRIDES": "mscoree,mshtml="}  # no Mono or Gecko download prompts

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["wine", *args], env=self.env, capture_output=True, text=True, timeout=300)

    def msiexec(self, *args: str) -> int:
        return self.run("msiexec", *args, "/qn").returncode

    def cmd(self, *commands: str) -> str:
        return self.run("cmd", "/c", " & echo ==== & ".join(commands)).stdout

    def query(self, *keys: str) -> list[Key | None]:
        """Each key (None when it does not exist), from one wine command."""
        sections = re.split(r"^\s*====\s*$", self.cmd(*(f"reg query {key}" for key in keys)), flags=re.M)
        found: list[Key | None] = []
        for key, section in zip(keys, sections, strict=False):
            lines = [line.rstrip() for line in section.splitlines() if line.strip()]
            if not lines or lines[0].startswith("reg:"):  # "reg: Unable to find the specified registry key"
                found.append(None)
                continue
            values = {}
            for line in lines:
                parts = line.strip().split(None, 2)
                if not line.startswith("HKEY_") and len(parts) == 3 and parts[1].startswith("REG_"):
                    values[parts[0]] = (parts[1], parts[2])
            # the key's own name heads its values; the other HKEY_ lines are its subkeys
            own = key.rsplit("\\", 1)[-1]
            subkeys = {line.rsplit("\\", 1)[-1] for line in lines if line.startswith("HKEY_")} - {own}
            found.append(Key(values, subkeys))
        assert len(found) == len(keys), sections
        return found

    @property
    def program_files(self) -> Path:
        return self.prefix / "drive_c" / "Program Files" / "agentroster"


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wine]:
    if shutil.which("wine") is None:
        pytest.skip("Wine runs the MSI through an installer engine (apt-get install wine wine64)")
    prefix = tmp_path_factory.mktemp("wine")
    wine = Wine(prefix)
    wine.run("reg", "add", r"HKCU\Software\Wine", "/v", "Version", "/d", "win7", "/f")  # makes the prefix
    yield wine
    subprocess.run(["wineserver", "-k"], env=wine.env, capture_output=True, timeout=60)
    shutil.rmtree(prefix, ignore_errors=True)  # some 700 MB


def without_service_start(msi: Path, copy: Path) -> Path:
    shutil.copy(msi, copy)
    [control] = table(copy, "ServiceControl")
    event = int(control["Event"]) & ~0x1  # msidbServiceControlEventStart
    subprocess.run(["msibuild", str(copy), "-q", f"UPDATE `ServiceControl` SET `Event` = {event}"], check=True,
                   capture_output=True, timeout=60)
    return copy


@needs_msitools
def test_wines_msiexec_installs_upgrades_refuses_and_uninstalls_it(built, wine, tmp_path):
    payload, _, paths = built
    first = without_service_start(paths[0], tmp_path / "first.msi")
    second = without_service_start(build(payload, tmp_path / "next", "1.5.0")[0], tmp_path / "second.msi")

    assert wine.msiexec("/i", str(first)) != 0  # Windows 7 (the prefix's): refused by the launch condition
    assert not wine.program_files.exists()
    wine.cmd(r"reg add HKCU\Software\Wine /v Version /d win10 /f",
             # a value Group Policy set: the MSI must neither change nor remove it
             f"reg add {POLICY} /v heartbeat_interval_s /t REG_DWORD /d 600 /f")

    assert wine.msiexec("/i", str(first), "COLLECTOR_URL=https://agentroster.corp.example.com",
                        r"ENROLL_SECRET_FILE=C:\ProgramData\agentroster\enroll-secret") == 0
    installed = {p.relative_to(wine.program_files).as_posix(): p.read_bytes()
                 for p in wine.program_files.rglob("*") if p.is_file()}
    assert installed == PAYLOAD_FILES
    assert (wine.prefix / "drive_c" / "ProgramData" / "agentroster").is_dir()
    policy, service = wine.query(POLICY, SERVICE_KEY)
    assert policy is not None and service is not None
    assert policy.values == {"collector_url": ("REG_SZ", "https://agentroster.corp.example.com"),
                             "enroll_secret_file": ("REG_SZ", r"C:\ProgramData\agentroster\enroll-secret"),
                             "heartbeat_interval_s": ("REG_DWORD", "0x258")}
    assert service.values["Start"] == ("REG_DWORD", "0x2") and service.values["Type"] == ("REG_DWORD", "0x10")
    assert service.values["ObjectName"] == ("REG_SZ", "LocalSystem")
    assert service.values["ImagePath"][1].replace('"', "") == \
        r"C:\Program Files\agentroster\agentroster.exe daemon --windows-service"
    # what the MSI wrote, read as the daemon reads the policy key
    registry = DictRegistry({POLICY_KEY: [("collector_url", policy.values["collector_url"][1], REG_SZ),
                                          ("enroll_secret_file", policy.values["enroll_secret_file"][1], REG_SZ),
                                          ("heartbeat_interval_s", 600, REG_DWORD)]})
    settings, _ = load_settings({}, env={}, managed=WindowsManagedSource(registry), platform="windows")
    assert settings.collector_url == "https://agentroster.corp.example.com" and settings.heartbeat_interval_s == 600

    assert wine.msiexec("/i", str(second)) == 0  # the upgrade, without the properties
    upgraded, products = wine.query(POLICY, UNINSTALL_KEY)
    assert upgraded == policy  # kept
    assert products is not None and "{" + wxs.product_code("1.5.0") + "}" in products.subkeys
    assert "{" + wxs.product_code("1.4.2") + "}" not in products.subkeys  # replaced, not installed beside

    assert wine.msiexec("/i", str(second), "ENROLL_SECRET=FAKE-enroll-secret-0000") != 0
    assert wine.query(POLICY) == [policy]  # nothing of the secret written

    assert wine.msiexec("/x", str(second)) == 0
    assert not wine.program_files.exists()
    service, policy, remembered = wine.query(SERVICE_KEY, POLICY, r"HKLM\SOFTWARE\agentroster\Installer")
    assert service is None and remembered is None
    assert policy is not None and policy.values == {"heartbeat_interval_s": ("REG_DWORD", "0x258")}  # GPO's stays

    assert wine.msiexec("/i", str(second)) == 0  # a fresh install without the properties writes none of them
    assert wine.query(POLICY) == [policy]


def test_a_new_version_keeps_the_components_and_the_upgrade_code(tmp_path):
    payload = make_payload(tmp_path / "payload")
    one, two = (ET.fromstring(wxs.wix_source(payload, v)) for v in ("1.4.2", "1.5.0"))
    ns = {"w": wxs.WIX_NS}
    assert one.find("w:Product", ns).get("UpgradeCode") == two.find("w:Product", ns).get("UpgradeCode")
    assert one.find("w:Product", ns).get("Id") != two.find("w:Product", ns).get("Id")
    guids = [{c.get("Id"): c.get("Guid") for c in doc.iter(f"{{{wxs.WIX_NS}}}Component")} for doc in (one, two)]
    assert guids[0] == guids[1]


@pytest.mark.parametrize(("version", "expected"), [("0.1.0", "0.1.0"), ("2.3", "2.3.0"), ("255.255.65535", None),
                                                   ("0.1.0.dev1", None), ("1.0.0rc1", None), ("256.0.0", None)])
def test_msi_version(version, expected):
    if expected is None and version != "255.255.65535":
        with pytest.raises(wxs.PayloadError, match="version"):
            wxs.msi_version(version)
    else:
        assert wxs.msi_version(version) == (expected or version)


def test_a_payload_the_msi_cannot_hold_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(BuildError, match="no agentroster.exe at the top"):
        build(make_payload(tmp_path / "a", {"agentroster": b"\x7fELF"}), tmp_path / "out", "1.0.0")
    linked = make_payload(tmp_path / "b")
    (linked / "_internal" / "link.dll").symlink_to(linked / "python311.dll")
    with pytest.raises(BuildError, match="link.dll is a symbolic link"):
        build(linked, tmp_path / "out", "1.0.0")
    odd = make_payload(tmp_path / "c", {**PAYLOAD_FILES, "_internal/naïve.txt": b"x"})
    with pytest.raises(BuildError, match="must be ASCII"):
        build(odd, tmp_path / "out", "1.0.0")
    cased = make_payload(tmp_path / "d", {**PAYLOAD_FILES, "_internal/Base_Library.zip": b"x"})
    with pytest.raises(BuildError, match="differ only in case"):
        build(cased, tmp_path / "out", "1.0.0")
    with pytest.raises(BuildError, match="not a folder"):
        build(tmp_path / "missing", tmp_path / "out", "1.0.0")
    assert not (tmp_path / "out").exists()  # nothing half-written


@needs_msitools
def test_an_attribute_wixl_would_ignore_stops_the_build(tmp_path, monkeypatch):
    real = wxs.wix_source

    def with_platform(payload: Path, version: str, companion: Path | None = None) -> bytes:  # wixl 0.101 knows no Package/@Platform
        return real(payload, version, companion).replace(b"<Package ", b'<Package Platform="x64" ', 1)

    monkeypatch.setattr(wxs, "wix_source", with_platform)
    with pytest.raises(BuildError, match="wixl failed .*Platform"):
        build(make_payload(tmp_path / "payload"), tmp_path / "out", "1.0.0")


def test_without_wixl_the_error_says_which_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BuildError, match="apt-get install wixl msitools"):
        build(make_payload(tmp_path / "payload"), tmp_path / "out", "1.0.0")
    assert msi_name("1.0") == "agentroster-1.0.0-x64.msi"


def test_the_msi_and_the_daemon_agree_on_names():
    assert wxs.POLICY_KEY == POLICY_KEY
    assert wxs.DATA_DIR_SDDL == DATA_DIR_SDDL
    assert wxs.SERVICE_NAME == winservice.SERVICE_NAME
    assert set(wxs.POLICY_PROPERTIES.values()) <= {doc.name for doc in MANAGED_SETTINGS}
    from endpoint.cli import _parser

    args = _parser("daemon").parse_args(wxs.SERVICE_ARGUMENTS.split())
    assert args.windows_service is True


# -- ADMX / ADML -----------------------------------------------------------------------------------------

NS = {"p": admx.NAMESPACE}


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[ET.Element, ET.Element]:
    admx_path, adml_path = admx.write_templates(tmp_path_factory.mktemp("policy"))
    return ET.parse(admx_path).getroot(), ET.parse(adml_path).getroot()


def test_admx_has_one_machine_policy_per_managed_setting_but_the_secret(templates):
    definitions, _ = templates
    assert definitions.tag == f"{{{admx.NAMESPACE}}}policyDefinitions"
    policies = definitions.findall("p:policies/p:policy", NS)
    names = [p.get("name") for p in policies]
    assert names == [doc.name for doc in MANAGED_SETTINGS if doc.name != "enroll_secret"]
    assert "root" not in names  # not a managed setting
    for policy in policies:
        assert policy.get("class") == "Machine" and policy.get("key") == POLICY_KEY
        assert policy.find("p:parentCategory", NS).get("ref") == admx.CATEGORY
        assert policy.find("p:supportedOn", NS).get("ref") == admx.SUPPORTED
        [element] = list(policy.find("p:elements", NS))
        assert element.get("valueName") == policy.get("name")  # the name the daemon reads
    kinds = {p.get("name"): p.find("p:elements", NS)[0].tag.split("}")[1] for p in policies}
    assert kinds["process_interval_s"] == "decimal" and kinds["max_rss_mb"] == "decimal"
    assert kinds["max_cpu_percent"] == "text" and kinds["spool_max_bytes"] == "text"
    assert kinds["sensors"] == "multiText" and kinds["log_level"] == "enum"
    assert kinds["collector_url"] == "text" and kinds["enroll_secret_file"] == "text"


def test_every_string_and_presentation_the_admx_names_is_in_the_adml(templates):
    definitions, resources = templates
    strings = {s.get("id"): s.text for s in resources.findall("p:resources/p:stringTable/p:string", NS)}
    presentations = {p.get("id"): p for p in resources.findall("p:resources/p:presentationTable/p:presentation", NS)}
    referenced = []
    for element in definitions.iter():
        for attr in ("displayName", "explainText", "presentation"):
            value = element.get(attr)
            if value:
                assert value.startswith("$(") and value.endswith(")"), value
                kind, _, ident = value[2:-1].partition(".")
                referenced.append((kind, ident))
    assert referenced
    for kind, ident in referenced:
        assert ident in (strings if kind == "string" else presentations), f"{kind}.{ident}"
        if kind == "string":
            assert strings[ident].strip()
    ids = [s.get("id") for s in resources.findall("p:resources/p:stringTable/p:string", NS)]
    assert len(ids) == len(set(ids))  # no string defined twice
    control_for = {"decimal": "decimalTextBox", "text": "textBox", "multiText": "multiTextBox", "enum": "dropdownList"}
    for policy in definitions.findall("p:policies/p:policy", NS):
        presentation = presentations[policy.get("name")]
        elements = {e.get("id"): e.tag.split("}")[1] for e in policy.find("p:elements", NS)}
        controls = {c.get("refId"): c.tag.split("}")[1] for c in presentation}
        assert controls == {ident: control_for[kind] for ident, kind in elements.items()}  # each by its own kind
        doc = next(d for d in MANAGED_SETTINGS if d.name == policy.get("name"))
        assert doc.summary in strings[f"{doc.name}_Explain"]


# a value for each setting as Group Policy writes it (REG_DWORD for decimal, REG_SZ for text and enum,
# REG_MULTI_SZ for multiText) and what the daemon makes of it
GPO_VALUES: dict[str, tuple[object, object]] = {
    "collector_url": ("https://agentroster.corp.example.com", "https://agentroster.corp.example.com"),
    "enroll_secret_file": (r"C:\ProgramData\agentroster\enroll-secret", Path(r"C:\ProgramData\agentroster\enroll-secret")),
    "ca_bundle": (r"C:\ProgramData\agentroster\corp-ca.pem", Path(r"C:\ProgramData\agentroster\corp-ca.pem")),
    "data_dir": (r"D:\agentroster", Path(r"D:\agentroster")),
    "process_interval_s": (7, 7.0),
    "full_scan_interval_s": (7200, 7200.0),
    "snapshot_interval_s": (43200, 43200.0),
    "heartbeat_interval_s": (600, 600.0),
    "report_interval_s": (30, 30.0),
    "sensors": (["processes", "files"], frozenset({"processes", "files"})),
    "max_cpu_percent": ("2.5", 2.5),
    "max_rss_mb": (200, 200.0),
    "spool_max_bytes": ("20MiB", 20 << 20),
    "drain_reports_per_s": ("0.5", 0.5),
    "log_level": ("debug", "debug"),
}
REG_TYPES = {"decimal": REG_DWORD, "text": REG_SZ, "enum": REG_SZ, "multiText": REG_MULTI_SZ}


@pytest.mark.parametrize("doc", admx.policy_settings(), ids=lambda d: d.name)
def test_each_policy_as_group_policy_writes_it_is_read_by_the_daemon(doc):
    written, expected = GPO_VALUES[doc.name]
    kind = admx.element_kind(doc)
    if kind == "enum":
        values = [item.find("p:value/p:string", NS).text
                  for item in admx.admx().iter(f"{{{admx.NAMESPACE}}}item")]
        assert written in values
    registry = DictRegistry({POLICY_KEY: [(doc.name, written, REG_TYPES[kind])]})
    settings, origins = load_settings({}, env={}, managed=WindowsManagedSource(registry), platform="windows")
    assert getattr(settings, doc.name) == expected
    assert origins[doc.name] == f"managed:HKLM\\{POLICY_KEY}"
    if kind == "decimal":  # the bounds the template allows are ones the daemon takes
        low, high = admx._decimal_bounds(doc)
        for edge in (low, high):
            edge_registry = DictRegistry({POLICY_KEY: [(doc.name, edge, REG_DWORD)]})
            load_settings({}, env={}, managed=WindowsManagedSource(edge_registry), platform="windows")


def test_every_sensor_and_none_through_multitext():
    for lines, expected in ((["processes", "files", "network"], Settings().sensors), ([], frozenset())):
        registry = DictRegistry({POLICY_KEY: [("sensors", lines, REG_MULTI_SZ)]})
        settings, _ = load_settings({}, env={}, managed=WindowsManagedSource(registry), platform="windows")
        assert settings.sensors == expected


# -- the service wrapper ---------------------------------------------------------------------------------
# pywin32 and the service manager exist on Windows only: ServiceHost and the real daemon run here, as the
# service runs them (the daemon in one thread, the stop request from another).


class Recorder:
    def __init__(self) -> None:
        self.ran = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> int:
        self.ran.set()
        self.stopped.wait(10)
        return 0

    def stop(self) -> None:
        self.stopped.set()


def test_a_stop_while_the_daemon_is_being_made_skips_its_run():
    made = threading.Event()
    go_on = threading.Event()
    recorder = Recorder()

    def make() -> Recorder:
        made.set()
        go_on.wait(10)
        return recorder

    host = winservice.ServiceHost(make)
    thread = threading.Thread(target=host.run)
    thread.start()
    made.wait(10)
    host.stop()  # the service manager's stop, before the daemon exists
    go_on.set()
    thread.join(10)
    assert not thread.is_alive() and host.exit_code == 0 and not recorder.ran.is_set()


class Failing:
    def __init__(self, code: int) -> None:
        self.code = code
        self.stop_asked = False

    def run(self) -> int:
        return self.code

    def stop(self) -> None:
        self.stop_asked = True


def test_a_daemon_that_ends_with_an_error_stops_the_service_with_one():
    host = winservice.ServiceHost(lambda: Failing(3))
    assert host.run() == 3
    assert "exit code 3" in (host.failure() or "")  # SvcRun raises: pywin32 reports STOPPED with an error
    asked = winservice.ServiceHost(lambda: Failing(3))
    asked.run()
    asked.stop()
    assert asked.failure() is None  # stopped as asked: a clean stop, no restart
    clean = winservice.ServiceHost(lambda: Failing(0))
    clean.run()
    assert clean.failure() is None


def test_the_service_holds_the_data_dirs_lock_while_its_daemon_runs(tmp_path):
    from endpoint.service.instance_lock import AlreadyRunning, InstanceLock

    first = Recorder()
    host = winservice.ServiceHost(lambda: first, data_dir_lock=InstanceLock(tmp_path / "data"))
    thread = threading.Thread(target=host.run)
    thread.start()
    try:
        assert first.ran.wait(10)
        second = winservice.ServiceHost(Recorder, data_dir_lock=InstanceLock(tmp_path / "data"))
        with pytest.raises(AlreadyRunning, match="already running"):
            second.run()  # SvcRun raises: the service stops with an error, and is restarted later
    finally:
        host.stop()
        thread.join(10)
    assert not thread.is_alive()
    InstanceLock(tmp_path / "data").acquire().release()  # released when the daemon ended


def test_not_on_windows_the_flag_says_who_starts_it(capsys):
    assert winservice.run_service(Settings()) == 2
    assert "Windows service manager" in capsys.readouterr().err


def test_the_service_log_holds_records_until_the_data_dir_is_open_then_writes_them_all(tmp_path):
    logger = logging.getLogger("agentroster.test.service_log")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    service_log = winservice.DeferredFileLog()
    logger.handlers[:] = [service_log.buffer]
    logger.warning("before the data dir: %s", "held")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    assert not winservice.log_file(data_dir).exists()
    handler = service_log.open(data_dir, logger)
    try:
        logger.info("watching %d homes", 3)
    finally:
        handler.close()
        logger.handlers[:] = []
    lines = winservice.log_file(data_dir).read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["before the data dir: held", "watching 3 homes"]
    assert winservice.log_file(data_dir) == data_dir / "daemon.log"  # not in a folder a junction could replace


def test_a_link_in_place_of_the_service_log_is_refused(tmp_path):
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "daemon.log").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="is a link"):
        winservice.file_log_handler(tmp_path)
    assert (tmp_path / "elsewhere").read_text() == ""


def test_a_real_daemon_in_the_service_thread_stops_cleanly_on_a_stop_from_another_thread(tmp_path):
    from endpoint.service.daemon import Daemon
    from endpoint.service.status import read_status

    home = tmp_path / "root" / "home" / "bob"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text('{"mcpServers": {"fs": {"command": "npx"}}}')
    settings, _ = load_settings({"data_dir": str(tmp_path / "data"), "root": str(tmp_path / "root")},
                                env={"AGENTROSTER_SENSORS": "files"})
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    host = winservice.ServiceHost(lambda: Daemon(settings))
    service_thread = threading.Thread(target=host.run, name="service")  # SvcDoRun's thread
    service_thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "data").is_dir():
        time.sleep(0.1)
    time.sleep(2.0)  # into its loop
    started = time.monotonic()
    host.stop()  # SvcStop, on the service manager's thread: no signal involved
    service_thread.join(timeout=30)
    assert not service_thread.is_alive()
    assert host.exit_code == 0
    assert time.monotonic() - started < 20
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # run() outside the main thread left them
    assert read_status(tmp_path / "data")["sightings"] >= 1


# -- the workflow ----------------------------------------------------------------------------------------


def test_the_windows_workflow_freezes_on_windows_and_builds_the_msi_on_linux():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "windows.yml").read_text())
    jobs = workflow["jobs"]
    freeze, msi = jobs["freeze"], jobs["msi"]
    assert freeze["runs-on"] == "windows-latest"
    assert msi["runs-on"].startswith("ubuntu") and msi["needs"] == "freeze"
    freeze_steps = " ".join(str(s.get("run", "")) + str(s.get("with", "")) for s in freeze["steps"])
    assert "3.11" in freeze_steps
    assert "requirements/ci.lock" in freeze_steps and "--require-hashes" in freeze_steps
    assert "python -m installers freeze" in freeze_steps
    assert "signtool" in freeze_steps
    sign = next(s for s in freeze["steps"] if "signtool" in str(s.get("run", "")))
    assert "secrets" not in str(sign.get("run")) and "SIGN" in str(sign.get("if"))  # secrets via env only
    uploads = [s for job in (freeze, msi) for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    downloads = [s for s in msi["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact")]
    assert len(uploads) == 2 and len(downloads) == 1
    assert downloads[0]["with"]["name"] == uploads[0]["with"]["name"]
    msi_steps = " ".join(str(s.get("run", "")) for s in msi["steps"])
    assert "wixl" in msi_steps and "msitools" in msi_steps and "installers msi --payload" in msi_steps
    assert ".msi" in uploads[1]["with"]["path"] and ".admx" in uploads[1]["with"]["path"]
    # the companion is frozen, checked, signed and shipped with the endpoint
    assert "'agentroster-companion.exe'" in freeze_steps and "-ArgumentList '--self-check' -Wait" in freeze_steps
    assert "$env:COMPANION" in freeze_steps
    assert "--companion payload/agentroster-companion-*" in msi_steps
    # the signing material goes even when a signing step failed
    for job in (freeze, msi):
        cleanup = [s for s in job["steps"] if "signing.pfx" in str(s.get("run", "")) and s.get("if") == "always()"]
        assert len(cleanup) == 1, job



# -- the tray companion ----------------------------------------------------------------------------------

COMPANION_FILES = {
    "agentroster-companion.exe": b"MZ fake agentroster-companion.exe\n",
    "_internal/PySide6/QtWidgets.pyd": b"MZ fake QtWidgets\n",
    "_internal/PySide6/plugins/platforms/qwindows.dll": b"MZ fake qwindows\n",
    "_internal/base_library.zip": b"PK fake companion\n",
}


@pytest.fixture(scope="module")
def with_companion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An MSI built from the payload and a companion folder (each a stand-in of files, as above)."""
    if any(shutil.which(t) is None for t in MSI_TOOLS):
        pytest.skip("wixl and msitools are needed (apt-get install wixl msitools)")
    base = tmp_path_factory.mktemp("msi-companion")
    companion = make_payload(base / "agentroster-companion-1.4.2-windows-x86_64", COMPANION_FILES)
    msi = build(make_payload(base / "payload"), base / "out", "1.4.2", companion=companion)[0]
    return msi, base


@needs_msitools
def test_the_msi_installs_the_companion_and_starts_it_at_log_on_from_the_run_key(with_companion, msi):
    companion_msi, base = with_companion
    runs = [row for row in table(companion_msi, "Registry") if row["Key"] == wxs.RUN_KEY]
    assert len(runs) == 1
    run = runs[0]
    assert run["Root"] == "2"  # HKLM: every user's session
    assert run["Name"] == "agentroster companion"
    file_rows = {row["File"]: row for row in table(companion_msi, "File")}
    exe_id = run["Value"].removeprefix('"[#').removesuffix(']"')
    assert run["Value"] == f'"[#{exe_id}]"' and file_rows[exe_id]["FileName"].endswith("agentroster-companion.exe")
    components = {row["Component"]: row for row in table(companion_msi, "Component")}
    assert components[run["Component_"]]["Attributes"] == "260"  # 64-bit (256) with a registry key path (4)
    # the companion's folder under INSTALLDIR\companion, every file in it
    extracted = base / "extracted"
    extracted.mkdir()
    subprocess.run(["msiextract", "-C", str(extracted), str(companion_msi)], check=True, capture_output=True,
                   timeout=120)
    files = {p.relative_to(extracted).as_posix(): p.read_bytes() for p in extracted.rglob("*") if p.is_file()}
    for rel, data in COMPANION_FILES.items():
        (hit,) = [f for f in files if f.endswith(f"agentroster/companion/{rel}")]
        assert files[hit] == data
    # the endpoint's files and service are as without the companion
    assert {r["Name"] for r in table(companion_msi, "ServiceInstall")} == {"agentroster"}
    # without the companion there is no Run value
    assert not [row for row in table(msi, "Registry") if row["Key"] == wxs.RUN_KEY]


@needs_msitools
def test_a_companion_folder_without_its_executable_is_refused(tmp_path):
    companion = make_payload(tmp_path / "companion", {"_internal/base_library.zip": b"PK\n"})
    with pytest.raises(BuildError, match="no agentroster-companion.exe at the top"):
        build(make_payload(tmp_path / "payload"), tmp_path / "out", "1.4.2", companion=companion)
