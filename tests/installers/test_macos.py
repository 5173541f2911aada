"""The macOS package layout and MDM profiles, built here from a small payload folder (a shell script
named agentroster): the pkg root's files, modes and owners, the LaunchDaemon plist, the scripts (run
by a real sh), the distribution, the profiles against Apple's payload keys and through the daemon's
own managed-preferences reader, and the CI workflow that makes the .pkg on macOS."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import stat
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from endpoint.service import _managed_macos
from endpoint.service._managed_macos import MacManagedSource
from endpoint.service.settings import StaticSource, load_settings
from endpoint.service.settings_table import MANAGED_SETTINGS
from installers.macos import build as mac
from installers.macos import profiles
from installers.macos.build import BuildError
from installers.macos.profiles import ProfileError

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "macos.yml"
IDENTITY = "Developer ID Application: Example Corp (ABCDE12345)"
IS_ROOT = os.geteuid() == 0
TRUSTED = (0,) if IS_ROOT else (0, os.getuid())
SHELLCHECK = shutil.which("shellcheck")
needs_shellcheck = pytest.mark.skipif(SHELLCHECK is None, reason="needs shellcheck (Debian package shellcheck)")


def make_payload(folder: Path, executable: bytes = b"#!/bin/sh\necho agentroster \"$@\"\n") -> Path:
    """A frozen-endpoint-like folder: the executable at the top, a library folder with a relative link."""
    (folder / "_internal" / "lib").mkdir(parents=True)
    exe = folder / "agentroster"
    exe.write_bytes(executable)
    exe.chmod(0o700)
    (folder / "_internal" / "lib" / "base_library.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (folder / "_internal" / "lib" / "base_library.zip").chmod(0o666)  # group/world-writable on purpose
    (folder / "_internal" / "current").symlink_to("lib")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("macos")
    out = base / "out"
    mac.build(make_payload(base / "payload"), out, "1.4.2", signing_identity=IDENTITY)
    return out / "macos"


# ---- the pkg root --------------------------------------------------------------------------------


def test_the_pkg_root_holds_the_payload_the_link_and_the_launchdaemon(built: Path) -> None:
    root = built / "root"
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert found == ["Library", "Library/LaunchDaemons", "Library/LaunchDaemons/dev.agentroster.endpoint.plist",
                     "usr", "usr/local", "usr/local/agentroster", "usr/local/agentroster/_internal",
                     "usr/local/agentroster/_internal/current", "usr/local/agentroster/_internal/lib",
                     "usr/local/agentroster/_internal/lib/base_library.zip", "usr/local/agentroster/agentroster",
                     "usr/local/agentroster/uninstall.sh", "usr/local/bin", "usr/local/bin/agentroster"]
    link = root / "usr/local/bin/agentroster"
    assert link.is_symlink() and os.readlink(link) == "../agentroster/agentroster"
    assert link.resolve() == (root / "usr/local/agentroster/agentroster").resolve()
    assert os.readlink(root / "usr/local/agentroster/_internal/current") == "lib"  # links inside stay links
    # the link runs the payload's executable
    run = subprocess.run([str(link), "status"], capture_output=True, text=True, timeout=10)
    assert run.stdout == "agentroster status\n"


def test_modes_are_0755_for_folders_and_executables_0644_for_the_rest(built: Path) -> None:
    root = built / "root"
    plist = root / "Library/LaunchDaemons/dev.agentroster.endpoint.plist"
    assert stat.S_IMODE(plist.stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "usr/local/agentroster/agentroster").stat().st_mode) == 0o755
    # the payload's world-writable file is not shipped world-writable
    assert stat.S_IMODE((root / "usr/local/agentroster/_internal/lib/base_library.zip").stat().st_mode) == 0o644
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        assert stat.S_IMODE(st.st_mode) in (0o755, 0o644), path
        if IS_ROOT:  # root:wheel (gid 0 is wheel on macOS)
            assert (st.st_uid, st.st_gid) == (0, 0), path
    for name in ("preinstall", "postinstall"):
        assert stat.S_IMODE((built / "scripts" / name).stat().st_mode) == 0o755
    assert stat.S_IMODE((built / "uninstall.sh").stat().st_mode) == 0o755


def test_the_launchdaemon_runs_the_packaged_executable_and_stays_alive(built: Path) -> None:
    data = (built / "root/Library/LaunchDaemons/dev.agentroster.endpoint.plist").read_bytes()
    assert data.startswith(b"<?xml")
    job = plistlib.loads(data)
    assert job["Label"] == "dev.agentroster.endpoint" == Path(mac.PLIST).stem
    assert job["ProgramArguments"] == ["/usr/local/agentroster/agentroster", "daemon"]
    assert (built / "root" / job["ProgramArguments"][0].lstrip("/")).is_file()
    assert job["RunAtLoad"] is True and job["KeepAlive"] is True
    assert isinstance(job["ThrottleInterval"], int) and job["ThrottleInterval"] >= 10
    assert job["ProcessType"] == "Background"
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert job[key].startswith("/Library/Logs/agentroster/")
    assert job["Umask"] == 0o077


def test_the_distribution_checks_macos_and_cpu_and_names_the_component(built: Path) -> None:
    gui = ET.parse(built / "distribution.xml").getroot()
    assert gui.tag == "installer-gui-script"
    assert gui.find("options").get("hostArchitectures") == "arm64,x86_64"
    assert gui.find("volume-check/allowed-os-versions/os-version").get("min") == mac.MIN_MACOS
    ref = gui.find("pkg-ref[@version]")
    assert ref.get("id") == mac.PKG_IDENTIFIER and ref.get("version") == "1.4.2"
    assert ref.text == "agentroster-component.pkg"
    assert gui.find("choices-outline/line").get("choice") == gui.find("choice").get("id")


def test_a_rebuild_gives_the_same_tree_and_profiles_and_drops_stale_files(tmp_path: Path, built: Path) -> None:
    out = tmp_path / "out" / "macos"
    payload = make_payload(tmp_path / "payload")
    mac.build(payload, out.parent, "1.4.2", signing_identity=IDENTITY)
    (out / "root" / "stale-file").write_text("left from an older build")
    mac.build(payload, out.parent, "1.4.2", signing_identity=IDENTITY)
    assert not (out / "root" / "stale-file").exists()
    listing = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert listing == sorted(str(p.relative_to(built)) for p in built.rglob("*"))
    for profile in (built / "profiles").iterdir():
        assert (out / "profiles" / profile.name).read_bytes() == profile.read_bytes(), profile.name


# ---- the CPU the executable is built for -----------------------------------------------------------


def thin(cpu: int) -> bytes:
    return struct.pack("<IIII", 0xFEEDFACF, cpu, 0, 2) + bytes(64)


def universal(*cpus: int) -> bytes:
    table = b"".join(struct.pack(">IIIII", cpu, 0, 4096 * (i + 1), 64, 12) for i, cpu in enumerate(cpus))
    return struct.pack(">II", 0xCAFEBABE, len(cpus)) + table + bytes(64)


def test_the_cpu_types_come_from_the_mach_o_header(tmp_path: Path) -> None:
    cases = {"arm": (thin(0x0100000C), ("arm64",)), "intel": (thin(0x01000007), ("x86_64",)),
             "both": (universal(0x01000007, 0x0100000C), ("arm64", "x86_64")),
             "script": (b"#!/bin/sh\nexit 0\n", None), "empty": (b"", None)}
    for name, (data, archs) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert mac.macho_archs(tmp_path / name) == archs, name


def test_an_arm64_build_refuses_intel_macs_in_preinstall_and_distribution(tmp_path: Path) -> None:
    out = tmp_path / "out" / "macos"
    mac.build(make_payload(tmp_path / "payload", thin(0x0100000C)), out.parent, "2.0.0")
    assert 'ARCHS="arm64"' in (out / "scripts/preinstall").read_text()
    assert ET.parse(out / "distribution.xml").getroot().find("options").get("hostArchitectures") == "arm64"
    assert not (out / "profiles" / "agentroster-pppc.mobileconfig").exists()  # no team id: no PPPC


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spoil, says", [
    (lambda p: (p / "agentroster").unlink(), "no executable named agentroster"),
    (lambda p: (p / "agentroster").chmod(0o644), "must be an executable regular file"),
    (lambda p: (p / "_internal" / "escape").symlink_to("../../outside"), "a link that leaves the payload"),
    (lambda p: (p / "_internal" / "abs").symlink_to("/etc/passwd"), "a link that leaves the payload"),
    (lambda p: os.mkfifo(p / "_internal" / "fifo"), "neither a file, a folder nor a link"),
    (lambda p: (p / "uninstall.sh").write_text("#!/bin/sh\n"), "already has an uninstall.sh"),
    (lambda p: (p / "agentroster").write_bytes(thin(0x00000012)), "which no supported Mac runs"),
])
def test_a_payload_the_package_must_not_ship_is_refused_before_anything_is_written(
        tmp_path: Path, spoil, says: str) -> None:
    payload = make_payload(tmp_path / "payload")
    spoil(payload)
    with pytest.raises(BuildError, match=says):
        mac.build(payload, tmp_path / "out", "1.0.0")
    assert not (tmp_path / "out").exists()


def test_a_bad_version_or_a_team_that_disagrees_with_the_identity_is_refused(tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "payload")
    for version in ("", "1.0\"; rm -rf /", "v1.0", "1.0.0 beta"):
        with pytest.raises(BuildError, match="is not one Installer compares"):
            mac.build(payload, tmp_path / "out", version)
    with pytest.raises(BuildError, match="not the one in the signing identity"):
        mac.build(payload, tmp_path / "out", "1.0.0", team_id="ZZZZZ99999", signing_identity=IDENTITY)
    with pytest.raises(BuildError, match="not 10 capital letters"):
        mac.build(payload, tmp_path / "out", "1.0.0", team_id="abc")
    assert not (tmp_path / "out").exists()


# ---- the scripts ---------------------------------------------------------------------------------


def built_scripts(built: Path) -> list[Path]:
    return [built / "scripts/preinstall", built / "scripts/postinstall", built / "uninstall.sh"]


def test_every_script_parses_with_sh_and_has_every_value_filled_in(built: Path) -> None:
    for script in built_scripts(built):
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n")
        assert "@" not in text.replace("@NAME@", ""), script.name  # no template token left
        subprocess.run(["sh", "-n", str(script)], check=True, timeout=10)
    assert (built / "uninstall.sh").read_bytes() == (built / "root/usr/local/agentroster/uninstall.sh").read_bytes()


@needs_shellcheck
def test_every_script_passes_shellcheck(built: Path) -> None:
    run = subprocess.run([SHELLCHECK, "--shell=sh", *map(str, built_scripts(built))],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout


def run_preinstall(built: Path, tmp_path: Path, macos: str, arm64: str, machine: str) -> subprocess.CompletedProcess:
    # sw_vers and sysctl exist only on macOS: stand-ins (mocks, as no macOS runs here) come first on
    # the script's PATH, the one line of the script this test changes
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    for name, output in (("sw_vers", macos), ("sysctl", arm64), ("uname", machine)):
        (shims / name).write_text(f"#!/bin/sh\necho '{output}'\n")
        (shims / name).chmod(0o755)
    text = (built / "scripts/preinstall").read_text()
    script = tmp_path / "preinstall"
    script.write_text(text.replace("PATH=/usr/bin:", f"PATH={shims}:/usr/bin:", 1))
    return subprocess.run(["sh", str(script), "/tmp/x.pkg", "/", "/"], capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("macos, ok", [("12.0", True), ("12.7.4", True), ("14.5", True), ("15", True),
                                       ("26.0.1", True), ("11.7.10", False), ("10.15.7", False),
                                       ("12", True), ("9", False), ("fourteen", False)])
def test_preinstall_refuses_a_macos_older_than_the_minimum(built: Path, tmp_path: Path, macos: str, ok: bool) -> None:
    run = run_preinstall(built, tmp_path, macos, "1", "arm64")
    assert (run.returncode == 0) is ok, run.stderr
    if not ok:
        assert "agentroster 1.4.2:" in run.stderr and macos in run.stderr


def test_preinstall_refuses_a_cpu_the_build_does_not_run_on(tmp_path: Path) -> None:
    out = tmp_path / "out" / "macos"
    mac.build(make_payload(tmp_path / "payload", thin(0x0100000C)), out.parent, "2.0.0")
    refused = run_preinstall(out, tmp_path, "14.5", "0", "x86_64")
    assert refused.returncode == 1
    assert "built for arm64 and this Mac is x86_64" in refused.stderr
    # an Apple silicon Mac running the installer under Rosetta still counts as arm64
    assert run_preinstall(out, tmp_path, "14.5", "1", "x86_64").returncode == 0


def test_postinstall_onto_another_volume_starts_nothing(built: Path, tmp_path: Path) -> None:
    # launchctl and the wheel group exist only on macOS: every one of those calls comes after this exit
    run = subprocess.run(["/bin/sh", str(built / "scripts/postinstall"), "/tmp/x.pkg", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True, timeout=10, env={"PATH": "/nonexistent"})
    assert run.returncode == 0, run.stderr
    assert f"installed on {tmp_path}; the daemon starts when that volume boots" in run.stdout
    assert list(tmp_path.iterdir()) == []


def installed_volume(built: Path, volume: Path) -> Path:
    """A volume with the package installed and a device's data and logs, as the daemon leaves them."""
    shutil.copytree(built / "root", volume, symlinks=True)
    data = volume / mac.DATA_DIR.lstrip("/")
    data.mkdir(parents=True)
    (data / "device.json").write_text('{"device_key": "FAKE-device-key-0000"}')
    (volume / mac.LOG_DIR.lstrip("/")).mkdir(parents=True)
    (volume / mac.LOG_FILE.lstrip("/")).write_text("started\n")
    return volume


def run_uninstall(built: Path, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    # pkgutil exists only on macOS: a stand-in (a mock) records how it was called
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    calls = tmp_path / "pkgutil-calls"
    calls.unlink(missing_ok=True)
    (shims / "pkgutil").write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    (shims / "pkgutil").chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:/usr/bin:/bin"}
    run = subprocess.run(["sh", str(built / "uninstall.sh"), *args], capture_output=True, text=True,
                         timeout=30, env=env)
    return run, calls.read_text() if calls.exists() else ""


@pytest.mark.skipif(not IS_ROOT, reason="uninstall.sh refuses to run as anyone but root")
def test_uninstall_removes_the_package_and_keeps_the_data_unless_purged(built: Path, tmp_path: Path) -> None:
    volume = installed_volume(built, tmp_path / "volume")
    run, calls = run_uninstall(built, tmp_path, "--root", str(volume))
    assert run.returncode == 0, run.stderr
    assert not (volume / "usr/local/agentroster").exists()
    assert not (volume / "usr/local/bin/agentroster").is_symlink()
    assert not (volume / mac.PLIST.lstrip("/")).exists()
    assert (volume / mac.DATA_DIR.lstrip("/") / "device.json").is_file()  # the device stays enrolled
    assert calls == f"--volume {volume} --forget dev.agentroster.endpoint\n"
    assert "its data stays in" in run.stdout

    purged = installed_volume(built, tmp_path / "purged")
    run, _ = run_uninstall(built, tmp_path, "--purge", "--root", str(purged))
    assert run.returncode == 0, run.stderr
    assert not (purged / mac.DATA_DIR.lstrip("/")).exists()
    assert not (purged / mac.LOG_DIR.lstrip("/")).exists()
    assert (purged / "Library/Application Support").is_dir()  # only agentroster's own folder goes


@pytest.mark.skipif(not IS_ROOT, reason="uninstall.sh refuses to run as anyone but root")
def test_uninstall_leaves_another_agentroster_link_and_refuses_unknown_options(built: Path, tmp_path: Path) -> None:
    volume = installed_volume(built, tmp_path / "volume")
    link = volume / "usr/local/bin/agentroster"
    link.unlink()
    link.symlink_to("/opt/homebrew/bin/agentroster")  # someone else's
    run, _ = run_uninstall(built, tmp_path, "--root", str(volume))
    assert run.returncode == 0 and link.is_symlink()
    run, calls = run_uninstall(built, tmp_path, "--purge-everything")
    assert run.returncode == 64 and "unknown option '--purge-everything'" in run.stderr and calls == ""
    run, _ = run_uninstall(built, tmp_path, "--root", str(tmp_path / "no-such-volume"))
    assert run.returncode == 66 and "is not a folder" in run.stderr


# ---- the profiles --------------------------------------------------------------------------------


def all_profiles(org: str = "com.example") -> list[profiles.Profile]:
    values = profiles.managed_settings("https://collector.example.com", extra={"sensors": ["processes", "files"]})
    return [profiles.settings_profile(org, values, organization="Example Corp"),
            profiles.pppc_profile(org, "ABCDE12345"), profiles.notifications_profile(org)]


def test_every_profile_has_only_apples_documented_keys_and_round_trips(tmp_path: Path) -> None:
    written = []
    for profile in all_profiles():
        assert profiles.validate_profile(profile.plist) == []
        path = profiles.write_profile(profile, tmp_path)
        written.append(path)
        data = path.read_bytes()
        assert data.startswith(b"<?xml") and path.suffix == ".mobileconfig"
        again = plistlib.loads(data)
        assert again == profile.plist
        assert again["PayloadScope"] == "System" and again["PayloadType"] == "Configuration"
        assert profiles.validate_profile(again) == []
    assert {p.name for p in written} == {"agentroster-settings.mobileconfig", "agentroster-pppc.mobileconfig",
                                         "agentroster-notifications.mobileconfig"}


def test_payload_uuids_and_identifiers_are_unique_and_stable_per_organisation() -> None:
    uuids, identifiers = [], []
    for profile in all_profiles():
        for entry in [profile.plist, *profile.plist["PayloadContent"]]:
            uuids.append(entry["PayloadUUID"])
            identifiers.append(entry["PayloadIdentifier"])
    assert len(set(uuids)) == len(uuids) == 6
    assert len(set(identifiers)) == len(identifiers)
    assert all(i.startswith("com.example.agentroster.") for i in identifiers)
    # made again: the same UUIDs, so the MDM replaces the profile; another organisation: other UUIDs
    assert [p.plist for p in all_profiles()] == [p.plist for p in all_profiles()]
    other = {e["PayloadUUID"] for p in all_profiles("org.other") for e in [p.plist, *p.plist["PayloadContent"]]}
    assert not other & set(uuids)


@pytest.mark.parametrize("spoil, says", [
    (lambda p: p.pop("PayloadIdentifier"), "the required key PayloadIdentifier is missing"),
    (lambda p: p.update(PayloadVersion="1"), "PayloadVersion: must be integer"),
    (lambda p: p.update(PayloadScope="Device"), "must be one of System, User"),
    (lambda p: p.update(PayloadUUID=p["PayloadUUID"].lower()), "not an upper-case canonical UUID"),
    (lambda p: p["PayloadContent"][0].update(PayloadUUID=p["PayloadUUID"]), "PayloadUUIDs are not unique"),
    (lambda p: p["PayloadContent"][0].update(PayloadType="com.example.unknown"), "is not one this table knows"),
    (lambda p: p["PayloadContent"][0].update(Colour="blue"), "Colour is not a key Apple documents here"),
    (lambda p: p["PayloadContent"][0]["Services"]["SystemPolicyAllFiles"][0].update(Allowed=True),
     "needs Authorization or Allowed, not both"),
    (lambda p: p["PayloadContent"][0]["Services"]["SystemPolicyAllFiles"][0].pop("CodeRequirement"),
     "the required key CodeRequirement is missing"),
    (lambda p: p["PayloadContent"][0]["Services"]["SystemPolicyAllFiles"][0].update(IdentifierType="file"),
     "must be one of bundleID, path"),
    (lambda p: p["PayloadContent"][0]["Services"].update(FullDiskAccess=[]), "'FullDiskAccess' is not a key"),
    (lambda p: p["PayloadContent"][0].update(Services=["SystemPolicyAllFiles"]), "Services: must be dictionary"),
    (lambda p: p["PayloadContent"].append("a payload"), "PayloadContent[1]: must be dictionary"),
])
def test_the_validation_catches_what_apple_would_refuse(spoil, says: str) -> None:
    profile = profiles.pppc_profile("com.example", "ABCDE12345")
    spoil(profile.plist)
    assert any(says in problem for problem in profiles.validate_profile(profile.plist)), says
    with pytest.raises(ProfileError, match="agentroster-pppc.mobileconfig"):
        profiles.write_profile(profile, Path("/nonexistent"))


def test_a_profile_that_is_not_a_dictionary_is_one_problem() -> None:
    assert profiles.validate_profile(["PayloadContent"]) == ["profile: must be dictionary, is list"]  # type: ignore[arg-type]


def test_the_validation_checks_the_managed_preferences_and_notifications_shapes() -> None:
    settings, _, notifications = all_profiles()
    settings.plist["PayloadContent"][0]["PayloadContent"][profiles.DOMAIN]["Forced"] = [{"settings": {}}]
    notifications.plist["PayloadContent"][0]["NotificationSettings"][0]["AlertType"] = 7
    assert any("required key mcx_preference_settings" in p for p in profiles.validate_profile(settings.plist))
    assert any("AlertType: must be one of 0, 1, 2" in p for p in profiles.validate_profile(notifications.plist))


def test_the_managed_preferences_are_what_the_daemon_reads(tmp_path: Path) -> None:
    """What mdmclient writes from the settings profile, read by the daemon's own reader and parser."""
    assert profiles.DOMAIN == _managed_macos.DOMAIN
    settings = all_profiles()[0]
    payload = settings.plist["PayloadContent"][0]
    assert payload["PayloadType"] == "com.apple.ManagedClient.preferences"
    values = payload["PayloadContent"]["dev.agentroster.endpoint"]["Forced"][0]["mcx_preference_settings"]
    managed = {doc.name for doc in MANAGED_SETTINGS}
    assert set(values) <= managed and "enroll_secret" not in values
    # mdmclient writes a binary plist, 0644, in a root-owned folder
    plist = tmp_path / "Library" / "Managed Preferences" / "dev.agentroster.endpoint.plist"
    plist.parent.mkdir(parents=True)
    for folder in (tmp_path / "Library", plist.parent):
        folder.chmod(0o755)
    plist.write_bytes(plistlib.dumps(values, fmt=plistlib.FMT_BINARY))
    plist.chmod(0o644)
    got, origins = load_settings(cli={}, env={}, managed=MacManagedSource(tmp_path, trusted_uids=TRUSTED),
                                 platform="macos")
    assert got.collector_url == "https://collector.example.com"
    assert got.enroll_secret_file == Path(profiles.DEFAULT_SECRET_FILE)
    assert got.sensors == frozenset({"processes", "files"})
    assert got.warnings == ()
    assert origins["collector_url"] == f"managed:{plist}"


def test_typed_settings_become_the_plist_types_the_daemon_takes() -> None:
    by_name = {doc.name: doc for doc in MANAGED_SETTINGS}
    values = profiles.managed_settings("https://c.example.com", extra={
        name: profiles.plist_value(by_name[name], text) for name, text in (
            ("process_interval_s", "2"), ("max_cpu_percent", "3.5"), ("spool_max_bytes", "20MiB"),
            ("sensors", "processes, network"), ("log_level", "debug"), ("max_rss_mb", "200"))})
    assert values["process_interval_s"] == 2 and isinstance(values["process_interval_s"], int)
    assert values["max_cpu_percent"] == 3.5 and values["spool_max_bytes"] == "20MiB"
    assert values["sensors"] == ["processes", "network"] and values["log_level"] == "debug"
    got, _ = load_settings(cli={}, env={}, managed=StaticSource(values), platform="macos")
    assert got.spool_max_bytes == 20 * 1024 * 1024 and got.max_rss_mb == 200


@pytest.mark.parametrize("url, extra, says", [
    ("https://c.example.com", {"enroll_secret": "FAKE-enroll-secret-0000"}, "can be read by every local user"),
    ("https://c.example.com", {"root": "/mnt"}, "'root' is not a managed setting"),
    ("https://c.example.com", {"colour": "blue"}, "'colour' is not a managed setting"),
    ("http://collector.example.com", {}, "collector_url .*must use https"),
    ("https://c.example.com", {"enroll_secret_file": "enroll.secret"}, "must be an absolute path"),
    ("https://c.example.com", {"max_cpu_percent": 250}, "max_cpu_percent .*at most 100"),
])
def test_a_setting_the_daemon_would_refuse_is_refused_when_the_profile_is_made(url, extra, says) -> None:
    with pytest.raises(ProfileError, match=says) as caught:
        profiles.managed_settings(url, extra=extra)
    assert "FAKE-enroll-secret-0000" not in str(caught.value)


def test_pppc_grants_full_disk_access_to_the_packaged_executable_by_team() -> None:
    payload = profiles.pppc_profile("com.example", "ABCDE12345").plist["PayloadContent"][0]
    (identity,) = payload["Services"]["SystemPolicyAllFiles"]
    assert identity["Identifier"] == mac.EXECUTABLE == mac.launchd_plist()["ProgramArguments"][0]
    assert identity["IdentifierType"] == "path" and identity["Authorization"] == "Allow"
    requirement = identity["CodeRequirement"]
    assert requirement.startswith(f'identifier "{profiles.CODESIGN_IDENTIFIER}" and anchor apple generic')
    assert requirement.endswith('certificate leaf[subject.OU] = "ABCDE12345"')
    # the workflow signs the executable with the identifier the requirement names
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["jobs"]["package"]["env"]["CODESIGN_IDENTIFIER"] == profiles.CODESIGN_IDENTIFIER
    for bad in ("abcde12345", "ABCDE1234", 'ABCDE12345" or anchor apple'):
        with pytest.raises(ProfileError, match="team id"):
            profiles.pppc_profile("com.example", bad)


def test_notifications_name_the_companion_bundle_id_given() -> None:
    item = profiles.notifications_profile("com.example", "com.example.nudge").plist["PayloadContent"][0]
    assert item["NotificationSettings"][0]["BundleIdentifier"] == "com.example.nudge"
    assert item["NotificationSettings"][0]["NotificationsEnabled"] is True
    for bad_org in ("example", "com example.x", ""):
        with pytest.raises(ProfileError, match="reverse-DNS"):
            profiles.notifications_profile(bad_org)
    with pytest.raises(ProfileError, match="bundle id"):
        profiles.notifications_profile("com.example", "nudge")


def test_the_jamf_manifest_offers_every_managed_setting_but_the_secret() -> None:
    manifest = json.loads(json.dumps(profiles.jamf_manifest()))
    props = manifest["properties"]
    assert set(props) == {doc.name for doc in MANAGED_SETTINGS} - {"enroll_secret"}
    assert props["sensors"]["type"] == "array" and set(props["sensors"]["items"]["enum"]) == {
        "processes", "files", "network"}
    assert props["log_level"]["enum"] == ["debug", "info", "warning", "error", "critical"]
    assert props["process_interval_s"]["default"] == 5 and props["process_interval_s"]["type"] == "number"
    assert props["collector_url"]["type"] == "string" and "default" not in props["collector_url"]


def test_the_command_writes_the_profiles_or_says_what_is_wrong(tmp_path: Path, capsys) -> None:
    out = tmp_path / "profiles"
    assert profiles.main(["--org", "com.example", "--collector-url", "https://c.example.com",
                          "--set", "sensors=processes,files", "--team-id", "ABCDE12345", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "agentroster-notifications.mobileconfig", "agentroster-pppc.mobileconfig",
        "agentroster-settings.mobileconfig", "dev.agentroster.endpoint.json", "dev.agentroster.endpoint.plist"]
    plain = plistlib.loads((out / "dev.agentroster.endpoint.plist").read_bytes())
    assert plain["sensors"] == ["processes", "files"]
    capsys.readouterr()
    assert profiles.main(["--org", "com.example", "--collector-url", "https://c.example.com",
                          "--set", "max_cpu_percent=lots", "--out", str(tmp_path / "x")]) == 2
    assert "max_cpu_percent: expected a number, got 'lots'" in capsys.readouterr().err


# ---- the workflow that makes the .pkg ------------------------------------------------------------


def workflow_steps() -> list[dict]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["package"]["steps"]


def test_the_workflow_builds_signs_notarizes_and_uploads_on_both_cpus() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["package"]
    assert {(m["runner"], m["arch"]) for m in job["strategy"]["matrix"]["include"]} == {
        ("macos-14", "arm64"), ("macos-13", "x86_64")}
    steps = workflow_steps()
    uses = [s.get("uses", "") for s in steps]
    assert uses[0].startswith("actions/checkout@") and any(u.startswith("actions/upload-artifact@") for u in uses)
    assert next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))["with"][
        "python-version"] == "3.11"
    scripts = "\n".join(s.get("run", "") for s in steps)
    for needed in ("./dev package macos", "codesign --force --options runtime --timestamp",
                   "pkgbuild --root", "--identifier \"$PKG_IDENTIFIER\"", "--version \"$VERSION\"",
                   "productbuild --distribution", "--sign \"$INSTALLER_IDENTITY\"",
                   "xcrun notarytool submit", "--wait", "xcrun stapler staple", "security delete-keychain",
                   "sudo installer -pkg \"$PRODUCT\" -target /", "uninstall.sh --purge",
                   "codesign --verify --strict -R=\"=$requirement\""):
        assert needed in scripts, needed
    assert job["env"]["PKG_IDENTIFIER"] == mac.PKG_IDENTIFIER
    # a fork has no secrets: the steps that need them are skipped, the unsigned .pkg is still made
    for step in steps:
        run = step.get("run", "")
        if "security import" in run or "codesign" in run or "notarytool" in run:
            assert "env.SIGN == 'yes'" in step.get("if", "") or "env.NOTARIZE == 'yes'" in step.get("if", ""), step
    assert "secrets.MACOS_SIGNING_P12 != ''" in job["env"]["SIGN"]


def test_the_workflow_scripts_parse_and_take_no_expressions_inline(tmp_path: Path) -> None:
    for i, step in enumerate(workflow_steps()):
        run = step.get("run")
        if run is None:
            continue
        assert "${{" not in run, step["name"]  # values come through env:, never pasted into the shell
        script = tmp_path / f"step{i}.sh"
        script.write_text("#!/bin/bash\n" + run)
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)
        if SHELLCHECK:
            checked = subprocess.run([SHELLCHECK, "--shell=bash", str(script)], capture_output=True,
                                     text=True, timeout=60)
            assert checked.returncode == 0, checked.stdout


def test_the_workflow_removes_the_signing_material_even_after_a_failed_step_and_runs_on_lock_changes() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow_steps()
    cleanup = [s for s in steps if "security delete-keychain" in s.get("run", "")]
    assert len(cleanup) == 1 and cleanup[0]["if"] == "always()"
    assert 'rm -f "$RUNNER_TEMP/signing.p12"' in cleanup[0]["run"]
    importing = next(s for s in steps if "security import" in s.get("run", ""))
    # the keychain is named for the clean-up before it is made
    assert importing["run"].index('"$GITHUB_ENV"') < importing["run"].index("security create-keychain")
    assert {"requirements/**", "dev"} <= set(workflow[True]["pull_request"]["paths"])  # YAML's "on" is True
    scripts = "\n".join(s.get("run", "") for s in steps)
    assert "--identifier \"$COMPANION_IDENTIFIER\"" in scripts and "--self-check" in scripts
    assert workflow["jobs"]["package"]["env"]["COMPANION_IDENTIFIER"] == profiles.COMPANION_BUNDLE_ID


# ---- the companion ---------------------------------------------------------------------------------


def make_companion_app(folder: Path, executable: bytes = b"#!/bin/sh\necho agentroster-companion \"$@\"\n") -> Path:
    """A companion folder as the macOS freeze leaves it: the application bundle, with its Info.plist and a
    framework link inside it (PyInstaller's bundles link Contents/MacOS to Contents/Frameworks)."""
    contents = folder / mac.COMPANION_APP / "Contents"
    (contents / "MacOS").mkdir(parents=True)
    (contents / "Frameworks").mkdir()
    (contents / "Frameworks" / "base_library.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (contents / "MacOS" / "base_library.zip").symlink_to("../Frameworks/base_library.zip")
    exe = contents / "MacOS" / "agentroster-companion"
    exe.write_bytes(executable)
    exe.chmod(0o755)
    (contents / "Info.plist").write_bytes(plistlib.dumps({
        "CFBundleIdentifier": profiles.COMPANION_BUNDLE_ID, "CFBundleExecutable": "agentroster-companion",
        "LSUIElement": True}))
    return folder


@pytest.fixture(scope="module")
def with_companion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("macos-companion")
    mac.build(make_payload(base / "payload"), base / "out", "1.4.2", signing_identity=IDENTITY,
              companion=make_companion_app(base / "companion"))
    return base / "out" / "macos"


def test_the_launchagent_starts_the_companion_app_in_each_gui_session_once(with_companion: Path) -> None:
    root = with_companion / "root"
    agent = root / "Library/LaunchAgents/dev.agentroster.companion.plist"
    assert stat.S_IMODE(agent.stat().st_mode) == 0o644
    plist = plistlib.loads(agent.read_bytes())
    assert plist == {"Label": "dev.agentroster.companion", "ProgramArguments": [mac.COMPANION_EXECUTABLE],
                     "LimitLoadToSessionType": "Aqua", "RunAtLoad": True, "KeepAlive": False,
                     "ProcessType": "Interactive"}
    # what it starts is in the payload: the app's executable, which runs
    exe = root / mac.COMPANION_EXECUTABLE.lstrip("/")
    assert stat.S_IMODE(exe.stat().st_mode) == 0o755
    assert subprocess.run([str(exe), "--self-check"], capture_output=True, text=True, timeout=10).stdout == \
        "agentroster-companion --self-check\n"
    info = plistlib.loads((exe.parent.parent / "Info.plist").read_bytes())
    # the bundle id the notifications profile allows
    notifications = profiles.notifications_profile("com.example")
    assert info["CFBundleIdentifier"] == profiles.COMPANION_BUNDLE_ID
    assert profiles.COMPANION_BUNDLE_ID in json.dumps(notifications.plist, default=str)
    assert os.readlink(exe.parent / "base_library.zip") == "../Frameworks/base_library.zip"  # links stay links
    # the daemon's own files are where they were, and the package without a companion has no agent
    assert (root / mac.PLIST.lstrip("/")).is_file()


def test_without_a_companion_there_is_no_launchagent(built: Path) -> None:
    assert not (built / "root/Library/LaunchAgents").exists()
    assert not (built / "root" / mac.COMPANION_DIR.lstrip("/")).exists()


@pytest.mark.skipif(not IS_ROOT, reason="uninstall.sh refuses to run as anyone but root")
def test_uninstall_removes_the_companion_and_its_launchagent(with_companion: Path, tmp_path: Path) -> None:
    volume = installed_volume(with_companion, tmp_path / "volume")
    assert (volume / mac.AGENT_PLIST.lstrip("/")).is_file()
    run, _ = run_uninstall(with_companion, tmp_path, "--root", str(volume))
    assert run.returncode == 0, run.stderr
    assert not (volume / mac.AGENT_PLIST.lstrip("/")).exists()
    assert not (volume / mac.COMPANION_DIR.lstrip("/")).exists()
    assert (volume / "Library/LaunchAgents").is_dir()  # other agents' folder stays


def test_a_companion_built_for_another_cpu_or_without_its_app_is_refused(tmp_path: Path) -> None:
    arm64 = struct.pack("<II", 0xFEEDFACF, 0x0100000C) + bytes(24)
    x86_64 = struct.pack("<II", 0xFEEDFACF, 0x01000007) + bytes(24)
    payload = make_payload(tmp_path / "payload", executable=x86_64)
    with pytest.raises(BuildError, match="built for arm64, the endpoint for x86_64"):
        mac.build(payload, tmp_path / "out", "1.4.2", companion=make_companion_app(tmp_path / "arm", arm64))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match="neither agentroster-companion.app nor agentroster-companion"):
        mac.build(payload, tmp_path / "out", "1.4.2", companion=tmp_path / "empty")
