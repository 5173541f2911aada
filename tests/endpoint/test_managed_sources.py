"""Managed settings as each OS holds them: endpoint.toml on Linux, a managed-preferences plist on
macOS (XML and binary), the policy registry key on Windows. The files are real files under tmp_path;
the registry is a dict behind the same reader interface as winreg (no registry exists here)."""

from __future__ import annotations

import datetime
import os
import plistlib
import socket
from pathlib import Path

import pytest

from endpoint.scan.homes import trusted_policy_template
from endpoint.service import _managed_windows as win
from endpoint.service._managed_common import MAX_MANAGED_BYTES
from endpoint.service._managed_linux import LinuxManagedSource
from endpoint.service._managed_macos import MacManagedSource
from endpoint.service.settings import Secret, SettingsError, load_settings

FAKE_SECRET = "sk-ant-FAKE-managed-0123456789"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to give files to another owner")
# files made by the test belong to whoever runs it; the reader trusts root, and that user when not root
TRUSTED = (0,) if IS_ROOT else (0, os.getuid())

TOML = """\
collector_url = "https://collector.example.com"
enroll_secret_file = "/etc/agentroster/enroll-secret"
process_interval_s = 2
sensors = ["processes", "files"]
spool_max_bytes = "20MiB"
log_level = "debug"
"""


def write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """A file under tmp_path with every directory root-like: 0755, owned by the test user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.parents:
        if parent.name in ("etc", "agentroster", "Library", "Managed Preferences"):
            os.chmod(parent, 0o755)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def linux(root: Path) -> LinuxManagedSource:
    return LinuxManagedSource(root, trusted_uids=TRUSTED)


def macos(root: Path) -> MacManagedSource:
    return MacManagedSource(root, trusted_uids=TRUSTED)


def toml_path(root: Path) -> Path:
    return root / "etc/agentroster/endpoint.toml"


def plist_path(root: Path) -> Path:
    return root / "Library/Managed Preferences/dev.agentroster.endpoint.plist"


def refusal(source) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        source.read()
    return info.value


# ---- Linux: endpoint.toml ----------------------------------------------------------------------------


def test_linux_missing_file_is_no_managed_settings(tmp_path):
    found = linux(tmp_path).read()
    assert found.values == {} and found.where == str(toml_path(tmp_path))


def test_linux_toml_gives_settings_with_its_path_as_origin(tmp_path):
    write(toml_path(tmp_path), TOML)
    settings, origins = load_settings(env={}, managed=linux(tmp_path), platform="linux")
    assert settings.collector_url == "https://collector.example.com"
    assert settings.enroll_secret_file == Path("/etc/agentroster/enroll-secret")
    assert settings.process_interval_s == 2.0
    assert settings.sensors == {"processes", "files"}
    assert settings.spool_max_bytes == 20 * 1024**2
    assert settings.log_level == "debug"
    assert origins["collector_url"] == f"managed:{toml_path(tmp_path)}"
    assert origins["heartbeat_interval_s"] == "default"


def test_linux_env_overrides_the_toml(tmp_path):
    write(toml_path(tmp_path), TOML)
    settings, origins = load_settings(env={"AGENTROSTER_LOG_LEVEL": "error"}, managed=linux(tmp_path))
    assert settings.log_level == "error" and origins["log_level"] == "env:AGENTROSTER_LOG_LEVEL"


def test_linux_world_writable_file_is_refused(tmp_path):
    write(toml_path(tmp_path), TOML, mode=0o666)
    exc = refusal(linux(tmp_path))
    assert exc.source == str(toml_path(tmp_path))
    assert "world-writable (mode 0666); refused" in exc.reason
    with pytest.raises(SettingsError):
        load_settings(env={}, managed=linux(tmp_path))


@needs_root
def test_linux_group_writable_file_of_a_user_group_is_refused(tmp_path):
    path = write(toml_path(tmp_path), TOML, mode=0o664)
    os.chown(path, 0, 100)
    assert "writable by group 100" in refusal(linux(tmp_path)).reason
    os.chown(path, 0, 0)  # root's own group may write it
    assert linux(tmp_path).read().values["log_level"] == "debug"


@needs_root
def test_linux_file_not_owned_by_root_is_refused(tmp_path):
    os.chown(write(toml_path(tmp_path), TOML), 65534, 65534)
    assert "owned by uid 65534, not root" in refusal(LinuxManagedSource(tmp_path)).reason


@needs_root
def test_linux_directory_others_can_write_is_refused(tmp_path):
    write(toml_path(tmp_path), TOML)
    os.chmod(toml_path(tmp_path).parent, 0o777)
    assert "directory" in (exc := refusal(linux(tmp_path))).reason and "can be written by others" in exc.reason
    os.chmod(toml_path(tmp_path).parent, 0o1777)  # sticky: others cannot replace root's file
    assert linux(tmp_path).read().values["log_level"] == "debug"


def test_linux_symlink_is_refused(tmp_path):
    target = write(tmp_path / "elsewhere.toml", TOML)
    toml_path(tmp_path).parent.mkdir(parents=True)
    toml_path(tmp_path).symlink_to(target)
    assert "symbolic link" in refusal(linux(tmp_path)).reason


def test_linux_fifo_and_socket_are_refused_without_blocking(tmp_path):
    toml_path(tmp_path).parent.mkdir(parents=True)
    os.mkfifo(toml_path(tmp_path))
    assert "a FIFO, not a regular file" in refusal(linux(tmp_path)).reason
    os.unlink(toml_path(tmp_path))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(toml_path(tmp_path)))
        assert "a socket, not a regular file" in refusal(linux(tmp_path)).reason


def test_linux_directory_in_place_of_the_file_is_refused(tmp_path):
    toml_path(tmp_path).mkdir(parents=True)
    assert "a directory" in refusal(linux(tmp_path)).reason


def test_linux_oversized_file_is_refused(tmp_path):
    write(toml_path(tmp_path), "# padding\n" * (MAX_MANAGED_BYTES // 10 + 1))
    assert "over the" in refusal(linux(tmp_path)).reason


def test_linux_broken_toml_says_where_and_not_what(tmp_path):
    write(toml_path(tmp_path), f'collector_url = "https://c.example.com"\nenroll_secret = "{FAKE_SECRET}\n')
    exc = refusal(linux(tmp_path))
    assert "is not valid TOML" in exc.reason and "line 2" in exc.reason
    assert FAKE_SECRET not in str(exc)


def test_linux_non_utf8_toml_is_refused(tmp_path):
    write(toml_path(tmp_path), 'log_level = "d\xe9bug"\n'.encode("latin-1"))
    assert "not UTF-8" in refusal(linux(tmp_path)).reason


def test_linux_unknown_keys_and_tables_are_warnings(tmp_path):
    write(toml_path(tmp_path), 'log_level = "info"\nintervall = 3\n[extra]\nx = 1\n')
    settings, _ = load_settings(env={}, managed=linux(tmp_path))
    assert [w.split(": ", 1)[1] for w in settings.warnings] == ["unknown key 'intervall' ignored",
                                                                "unknown key 'extra' ignored"]


def test_linux_wrong_type_in_toml_names_field_and_file(tmp_path):
    write(toml_path(tmp_path), 'heartbeat_interval_s = "often"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, managed=linux(tmp_path))
    assert info.value.field == "heartbeat_interval_s"
    assert info.value.source == f"managed:{toml_path(tmp_path)}"


def test_linux_secret_in_toml_is_read_and_never_shown(tmp_path):
    write(toml_path(tmp_path), f'enroll_secret = "{FAKE_SECRET}"\n', mode=0o600)
    settings, _ = load_settings(env={}, managed=linux(tmp_path))
    assert settings.enroll_secret == Secret(FAKE_SECRET)
    assert FAKE_SECRET not in repr(settings)
    assert settings.warnings == ()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_linux_secret_in_a_file_others_can_read_is_refused_at_start_up(tmp_path, mode):
    write(toml_path(tmp_path), f'enroll_secret = "{FAKE_SECRET}"\n', mode=mode)
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, managed=linux(tmp_path))
    exc = info.value
    assert exc.field == "enroll_secret" and exc.source == f"managed:{toml_path(tmp_path)}"
    assert f"other users can read it (mode {mode:04o})" in exc.reason and "enroll_secret_file" in exc.reason
    assert FAKE_SECRET not in str(exc)


def test_linux_secret_from_the_env_beside_a_readable_file_without_one_is_fine(tmp_path):
    write(toml_path(tmp_path), TOML.replace('enroll_secret_file = "/etc/agentroster/enroll-secret"\n', ""))
    settings, origins = load_settings(env={"AGENTROSTER_ENROLL_SECRET": FAKE_SECRET}, managed=linux(tmp_path))
    assert settings.enroll_secret == Secret(FAKE_SECRET) and origins["enroll_secret"] == "env:AGENTROSTER_ENROLL_SECRET"


def test_linux_secret_in_a_readable_file_is_refused_even_when_the_env_would_win(tmp_path):
    write(toml_path(tmp_path), f'enroll_secret = "{FAKE_SECRET}"\n', mode=0o644)
    with pytest.raises(SettingsError) as info:  # it can be read there whichever source wins
        load_settings(env={"AGENTROSTER_ENROLL_SECRET": FAKE_SECRET + "-env"}, managed=linux(tmp_path))
    assert info.value.field == "enroll_secret"


# ---- macOS: managed preferences plist ----------------------------------------------------------------

PREFS = {"collector_url": "https://collector.example.com", "report_interval_s": 30,
         "sensors": ["processes", "network"], "max_cpu_percent": 1.5}


@pytest.mark.parametrize("fmt", [plistlib.FMT_XML, plistlib.FMT_BINARY], ids=["xml", "binary"])
def test_macos_plist_in_xml_and_binary(tmp_path, fmt):
    path = write(plist_path(tmp_path), plistlib.dumps(PREFS, fmt=fmt))
    assert path.read_bytes().startswith(b"bplist00" if fmt == plistlib.FMT_BINARY else b"<?xml")
    settings, origins = load_settings(env={}, managed=macos(tmp_path), platform="darwin")
    assert settings.collector_url == "https://collector.example.com"
    assert settings.report_interval_s == 30.0
    assert settings.sensors == {"processes", "network"}
    assert settings.max_cpu_percent == 1.5
    assert origins["report_interval_s"] == f"managed:{plist_path(tmp_path)}"
    assert settings.data_dir == Path("/Library/Application Support/agentroster")


def test_macos_payload_keys_of_a_profile_are_not_settings(tmp_path):
    prefs = {**PREFS, "PayloadUUID": "5A6B", "PayloadType": "dev.agentroster.endpoint", "PayloadVersion": 1}
    write(plist_path(tmp_path), plistlib.dumps(prefs))
    settings, _ = load_settings(env={}, managed=macos(tmp_path))
    assert settings.warnings == ()


def test_macos_per_user_managed_preferences_are_ignored(tmp_path):
    write(tmp_path / "Library/Managed Preferences/alice/dev.agentroster.endpoint.plist", plistlib.dumps(PREFS))
    assert macos(tmp_path).read().values == {}


@pytest.mark.parametrize("data", [b"bplist00\x00\x01garbage", b"<?xml version='1.0'?><plist><dict><key>",
                                  b"not a plist at all", b""], ids=["binary", "xml", "text", "empty"])
def test_macos_broken_plist_is_refused(tmp_path, data):
    write(plist_path(tmp_path), data)
    assert "not a valid property list" in refusal(macos(tmp_path)).reason


def test_macos_plist_that_is_not_a_dictionary_is_refused(tmp_path):
    write(plist_path(tmp_path), plistlib.dumps(["collector_url"], fmt=plistlib.FMT_BINARY))
    assert "dictionary" in refusal(macos(tmp_path)).reason


def test_macos_plist_value_of_the_wrong_type_names_field_and_file(tmp_path):
    write(plist_path(tmp_path), plistlib.dumps({"collector_url": datetime.datetime(2026, 1, 1)}))
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, managed=macos(tmp_path))
    assert info.value.field == "collector_url"
    assert "expected a string, got datetime" in info.value.reason


def test_macos_enroll_secret_in_the_world_readable_managed_preferences_is_refused(tmp_path):
    # mdmclient writes the managed preferences 0644: every local user can read the profile's values
    write(plist_path(tmp_path), plistlib.dumps({**PREFS, "enroll_secret": FAKE_SECRET}), mode=0o644)
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, managed=macos(tmp_path), platform="darwin")
    exc = info.value
    assert exc.field == "enroll_secret" and exc.source == f"managed:{plist_path(tmp_path)}"
    assert "other users can read it (mode 0644)" in exc.reason and "enroll_secret_file" in exc.reason
    assert FAKE_SECRET not in str(exc)


def test_macos_enroll_secret_in_a_root_only_plist_is_read(tmp_path):
    write(plist_path(tmp_path), plistlib.dumps({**PREFS, "enroll_secret": FAKE_SECRET}), mode=0o600)
    settings, _ = load_settings(env={}, managed=macos(tmp_path), platform="darwin")
    assert settings.enroll_secret == Secret(FAKE_SECRET)


def test_macos_world_writable_plist_is_refused(tmp_path):
    write(plist_path(tmp_path), plistlib.dumps(PREFS), mode=0o646)
    assert "world-writable" in refusal(macos(tmp_path)).reason


# ---- Windows: the policy registry key -----------------------------------------------------------------


def registry(*values) -> win.DictRegistry:
    return win.DictRegistry({r"SOFTWARE\Policies\agentroster": list(values)})


def test_windows_registry_types_map_to_settings():
    reader = registry(
        ("Collector_URL", "https://collector.example.com", win.REG_SZ),
        ("enroll_secret_file", r"C:\ProgramData\agentroster\enroll-secret" + "\x00", win.REG_SZ),
        ("process_interval_s", 3, win.REG_DWORD),
        ("report_interval_s", "2.5", win.REG_SZ),
        ("spool_max_bytes", 5 * 1024**3, win.REG_QWORD),
        ("sensors", ["processes", "files", ""], win.REG_MULTI_SZ),
        ("data_dir", r"C:\ProgramData\agentroster-test", win.REG_EXPAND_SZ),
        ("", "ignored default value", win.REG_SZ),
    )
    settings, origins = load_settings(env={}, managed=win.WindowsManagedSource(reader), platform="win32")
    assert settings.collector_url == "https://collector.example.com"
    assert str(settings.enroll_secret_file) == r"C:\ProgramData\agentroster\enroll-secret"
    assert settings.process_interval_s == 3.0 and settings.report_interval_s == 2.5
    assert settings.spool_max_bytes == 5 * 1024**3
    assert settings.sensors == {"processes", "files"}
    assert str(settings.data_dir) == r"C:\ProgramData\agentroster-test"
    assert origins["collector_url"] == r"managed:HKLM\SOFTWARE\Policies\agentroster"
    assert settings.warnings == ()


def test_windows_enroll_secret_in_the_policy_key_is_refused_at_start_up():
    reader = registry(("Collector_URL", "https://collector.example.com", win.REG_SZ),
                      ("enroll_secret", FAKE_SECRET, win.REG_SZ))
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, managed=win.WindowsManagedSource(reader), platform="win32")
    exc = info.value
    assert exc.field == "enroll_secret" and exc.source == r"managed:HKLM\SOFTWARE\Policies\agentroster"
    assert "every local user can read" in exc.reason and "enroll_secret_file" in exc.reason
    assert FAKE_SECRET not in str(exc)


def test_windows_missing_policy_key_is_no_managed_settings():
    source = win.WindowsManagedSource(win.DictRegistry({}))
    assert source.read().values == {}
    settings, origins = load_settings(env={"PROGRAMDATA": r"C:\ProgramData"}, managed=source, platform="win32")
    assert str(settings.data_dir) == r"C:\ProgramData\agentroster"
    assert set(origins.values()) == {"default"}


def test_windows_binary_value_is_refused_with_the_key_named():
    reader = registry(("max_rss_mb", b"\x96\x00\x00\x00", win.REG_BINARY))
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, managed=win.WindowsManagedSource(reader), platform="win32")
    assert info.value.field == "max_rss_mb"
    assert info.value.source == r"managed:HKLM\SOFTWARE\Policies\agentroster"
    assert "binary data" in info.value.reason


def test_windows_multi_string_for_a_single_value_is_refused():
    reader = registry(("log_level", ["debug", "info"], win.REG_MULTI_SZ))
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, managed=win.WindowsManagedSource(reader), platform="win32")
    assert "expected a string, got a list" in info.value.reason


def test_windows_unknown_values_are_warnings():
    reader = registry(("LogLevel", "debug", win.REG_SZ))
    settings, _ = load_settings(env={}, managed=win.WindowsManagedSource(reader), platform="win32")
    assert settings.log_level == "info"
    assert settings.warnings == (r"HKLM\SOFTWARE\Policies\agentroster: unknown key 'loglevel' ignored",)


def test_windows_registry_read_failure_is_a_settings_error():
    class DeniedRegistry:  # a registry that refuses access, as an ACL-locked key would
        def values(self, key):
            raise PermissionError(5, "Access is denied")

    exc = refusal(win.WindowsManagedSource(DeniedRegistry()))
    assert exc.source == r"HKLM\SOFTWARE\Policies\agentroster" and "Access is denied" in exc.reason


def test_windows_real_reader_is_chosen_without_importing_winreg():
    source = win.WindowsManagedSource()
    assert isinstance(source.reader, win.WinregReader)
    if os.name != "nt":
        with pytest.raises(ModuleNotFoundError):
            source.read()


# ---- the examples in docs/endpoint-settings.md are valid -------------------------------------------

DOC = Path(__file__).parents[2] / "docs/endpoint-settings.md"


def doc_block(language: str) -> str:
    text = DOC.read_text()
    start = text.index(f"```{language}\n") + len(language) + 4
    return text[start:text.index("```", start)]


def test_documented_endpoint_toml_loads_without_warnings(tmp_path):
    write(toml_path(tmp_path), doc_block("toml"))
    settings, origins = load_settings(env={}, managed=linux(tmp_path))
    assert settings.warnings == ()
    assert settings.collector_url == "https://agentroster.corp.example.com"
    assert settings.spool_max_bytes == 50 * 1024**2
    assert origins["enroll_secret_file"].startswith("managed:")


def test_documented_profile_payload_loads_without_warnings(tmp_path):
    profile = plistlib.loads(doc_block("xml").encode())
    payload = profile["PayloadContent"][0]
    assert payload["PayloadType"] == "dev.agentroster.endpoint"
    write(plist_path(tmp_path), plistlib.dumps(payload, fmt=plistlib.FMT_BINARY))
    settings, _ = load_settings(env={}, managed=macos(tmp_path), platform="darwin")
    assert settings.warnings == ()
    assert settings.sensors == {"processes", "files", "network"}
    assert settings.heartbeat_interval_s == 300


def test_documented_reg_file_values_load():
    values = []
    for line in doc_block("reg").replace("\\\n  ", "").splitlines()[3:]:
        name, data = line.split("=", 1)
        name = name.strip('"')
        if data.startswith("dword:"):
            values.append((name, int(data[6:], 16), win.REG_DWORD))
        elif data.startswith("hex(7):"):
            raw = bytes(int(b, 16) for b in data[7:].split(","))
            values.append((name, raw.decode("utf-16-le").rstrip("\x00").split("\x00"), win.REG_MULTI_SZ))
        else:
            values.append((name, data.strip('"').replace("\\\\", "\\"), win.REG_SZ))
    settings, _ = load_settings(env={}, managed=win.WindowsManagedSource(registry(*values)), platform="win32")
    assert settings.warnings == ()
    assert settings.heartbeat_interval_s == 300 and settings.max_rss_mb == 150
    assert settings.sensors == {"processes", "files", "network"}
    assert str(settings.ca_bundle) == r"C:\ProgramData\agentroster\corp-root-ca.pem"


# ---- Windows: organisation policy only from where only administrators write; the data dir's ACL ------


@pytest.mark.parametrize(("template", "trusted"), [
    ("%PROGRAMFILES%/ClaudeCode/managed-mcp.json", True), ("%ProgramFiles%\\ClaudeCode\\managed-settings.json", True),
    ("%PROGRAMDATA%/ClaudeCode/managed-mcp.json", False), ("%ProgramData%\\ClaudeCode\\managed-settings.json", False),
    ("%PROGRAMDATA%/gemini-cli/settings.json", False), ("%APPDATA%/Claude/claude_desktop_config.json", False),
    ("/etc/claude-code/managed-mcp.json", True),
])
def test_windows_policy_files_count_only_under_folders_only_administrators_create(template, trusted):
    assert trusted_policy_template(template) is trusted


def test_every_windows_managed_template_of_the_signatures_is_judged():
    """Each "managed" file template the signatures know on Windows is either trusted as policy or not,
    and those under %PROGRAMDATA% never are."""
    import signatures

    managed = {fm.path for _sig, fm in signatures.load().file_templates if fm.scope == "managed"}
    in_programdata = {t for t in managed if t.upper().startswith("%PROGRAMDATA%")}
    assert in_programdata and not any(trusted_policy_template(t) for t in in_programdata)
    assert any(trusted_policy_template(t) for t in managed if t.upper().startswith("%PROGRAMFILES%"))


def _claude_servers(root: Path) -> dict[str, dict[str, bool]]:
    import signatures
    from endpoint.scan.evidence import ConfigRecord
    from endpoint.scan.homes import find_homes
    from endpoint.scan.sensors.files import FileScan

    found = FileScan(signatures.load(), str(root)).run(find_homes(str(root)))
    return {r.display_path: {s.name: s.enabled for s in r.mcp_servers}
            for r in found if isinstance(r, ConfigRecord) and r.mcp_servers}


def test_a_managed_mcp_json_a_user_put_in_programdata_switches_nothing_off(tmp_path):
    """Any Windows user can create C:\\ProgramData\\ClaudeCode: a managed-mcp.json there would otherwise
    mark every other Claude Code server of the machine off (hiding them); under Program Files it does."""
    write(tmp_path / "Users" / "alice" / ".claude.json",
          '{"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}}}')
    write(tmp_path / "ProgramData" / "ClaudeCode" / "managed-mcp.json",
          '{"mcpServers": {"decoy": {"command": "cmd.exe"}}}')
    assert _claude_servers(tmp_path)["/Users/alice/.claude.json"] == {"github": True}
    write(tmp_path / "Program Files" / "ClaudeCode" / "managed-mcp.json",
          '{"mcpServers": {"company": {"type": "http", "url": "https://mcp.corp.example/mcp"}}}')
    assert _claude_servers(tmp_path)["/Users/alice/.claude.json"] == {"github": False}


def test_windows_data_dir_acl_commands_are_exact():
    from endpoint.service import _acl_windows as acl

    icacls = r"D:\Win\System32\icacls.exe"
    assert acl.icacls_commands(r"C:\ProgramData\agentroster", env={"SystemRoot": "D:\\Win\\"}) == [
        [icacls, r"C:\ProgramData\agentroster", "/setowner", "*S-1-5-32-544", "/T", "/C", "/L", "/Q"],
        [icacls, r"C:\ProgramData\agentroster", "/reset", "/T", "/C", "/L", "/Q"],
        [icacls, r"C:\ProgramData\agentroster", "/inheritance:r", "/grant:r", "*S-1-5-18:(OI)(CI)F",
         "*S-1-5-32-544:(OI)(CI)F", "/C", "/L", "/Q"],
    ]
    assert acl.icacls_path({}) == r"C:\Windows\System32\icacls.exe"  # never found through PATH
    assert acl.DATA_DIR_SDDL == "O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"


def test_windows_data_dir_acl_runs_each_step_and_stops_at_a_failure():
    from endpoint.service import _acl_windows as acl

    ran: list[list[str]] = []

    def runner(argv):
        ran.append(list(argv))
        return (5, "Access is denied.") if "/reset" in argv else (0, "")

    with pytest.raises(PermissionError, match=r"icacls /reset failed \(exit 5\): Access is denied"):
        acl.restrict_data_dir(r"C:\ProgramData\agentroster", runner, env={})
    assert [argv[2] for argv in ran] == ["/setowner", "/reset"]  # the ACL step never ran on a half-done dir
    ran.clear()
    acl.restrict_data_dir(r"C:\ProgramData\agentroster", lambda argv: ran.append(list(argv)) or (0, ""), env={})
    assert ran == acl.icacls_commands(r"C:\ProgramData\agentroster", env={})


# ---- Windows: who can read the enroll secret file (its ACL, as icacls prints it) ----------------------

# Recorded: `icacls C:\WINDOWS\system32\mmc.exe` on Windows 10, as published at
# https://support.moonpoint.com/os/windows/commands/icacls.php (the alignment is icacls's own).
ICACLS_MMC = """\
C:\\WINDOWS\\system32\\mmc.exe NT SERVICE\\TrustedInstaller:(F)
                            BUILTIN\\Administrators:(RX)
                            NT AUTHORITY\\SYSTEM:(RX)
                            BUILTIN\\Users:(RX)
                            APPLICATION PACKAGE AUTHORITY\\ALL APPLICATION PACKAGES:(RX)
                            APPLICATION PACKAGE AUTHORITY\\ALL RESTRICTED APPLICATION PACKAGES:(RX)

Successfully processed 1 files; Failed processing 0 files
"""
# A secret written where the data dir's ACL is in place: SYSTEM and Administrators, both inherited.
SECRET = r"C:\ProgramData\agentroster\enroll-secret"
ICACLS_PRIVATE = f"""\
{SECRET} NT AUTHORITY\\SYSTEM:(I)(F)
{' ' * len(SECRET)} BUILTIN\\Administrators:(I)(F)

Successfully processed 1 files; Failed processing 0 files
"""
# The same file left under %PROGRAMDATA%'s own ACL: Users read it (and may add to it).
ICACLS_INHERITED_USERS = f"""\
{SECRET} NT AUTHORITY\\SYSTEM:(I)(F)
{' ' * len(SECRET)} BUILTIN\\Administrators:(I)(F)
{' ' * len(SECRET)} BUILTIN\\Users:(I)(RX)
{' ' * len(SECRET)} BUILTIN\\Users:(I)(WD,AD,WEA,WA)

Successfully processed 1 files; Failed processing 0 files
"""


def test_icacls_output_is_parsed_entry_by_entry():
    from endpoint.service import _acl_windows as acl

    aces = acl.parse_icacls(ICACLS_MMC, r"C:\WINDOWS\system32\mmc.exe")
    assert [(a.principal, a.rights) for a in aces] == [
        (r"NT SERVICE\TrustedInstaller", "F"), (r"BUILTIN\Administrators", "RX"), (r"NT AUTHORITY\SYSTEM", "RX"),
        (r"BUILTIN\Users", "RX"), (r"APPLICATION PACKAGE AUTHORITY\ALL APPLICATION PACKAGES", "RX"),
        (r"APPLICATION PACKAGE AUTHORITY\ALL RESTRICTED APPLICATION PACKAGES", "RX")]
    assert acl.other_readers(aces) == [r"NT SERVICE\TrustedInstaller", r"BUILTIN\Users",
                                       r"APPLICATION PACKAGE AUTHORITY\ALL APPLICATION PACKAGES",
                                       r"APPLICATION PACKAGE AUTHORITY\ALL RESTRICTED APPLICATION PACKAGES"]
    inherited = acl.parse_icacls(ICACLS_INHERITED_USERS, SECRET)
    assert inherited[3].flags == {"I"} and inherited[3].rights == "WD,AD,WEA,WA"
    assert acl.other_readers(inherited) == [r"BUILTIN\Users"]
    assert acl.other_readers(acl.parse_icacls(ICACLS_PRIVATE, SECRET)) == []


def test_icacls_entries_that_let_no_one_in_are_not_readers():
    from endpoint.service import _acl_windows as acl

    pad = " " * len(SECRET)
    output = (f"{SECRET} Everyone:(DENY)(RX)\n{pad} CREATOR OWNER:(OI)(CI)(IO)(F)\n{pad} BUILTIN\\Guests:(N)\n"
              f"{pad} *S-1-5-18:(F)\n{pad} S-1-5-32-544:(I)(F)\n\nSuccessfully processed 1 files; "
              "Failed processing 0 files\n")
    assert acl.other_readers(acl.parse_icacls(output, SECRET)) == []


@pytest.mark.parametrize("output", ["", "C:\\other\\file NT AUTHORITY\\SYSTEM:(F)\n",
                                    f"{SECRET}: Access is denied.\n", f"{SECRET} NT AUTHORITY\\SYSTEM:(F\n",
                                    f"{SECRET} BUILTIN\\Users:(I)\n"])
def test_icacls_output_that_is_not_the_files_acl_is_refused(output):
    from endpoint.service import _acl_windows as acl

    problem = acl.private_acl_problem(SECRET, lambda _path: output)
    assert problem is not None and "cannot be understood" in problem


def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "enroll-secret"
    path.write_text(FAKE_SECRET)
    os.chmod(path, 0o600)
    return path


def _as_icacls_of(recording: str, path: Path) -> str:
    return recording.replace(SECRET, str(path)).replace(" " * len(SECRET), " " * len(str(path)))


def test_windows_secret_file_others_can_read_is_refused(tmp_path):
    from endpoint.service._managed_common import read_secret_file

    path = _secret_file(tmp_path)
    with pytest.raises(SettingsError) as info:
        read_secret_file(path, trusted_uids=TRUSTED, platform="win32",
                         acl_reader=lambda p: _as_icacls_of(ICACLS_INHERITED_USERS, Path(p)))
    exc = info.value
    assert exc.field == "enroll_secret_file" and exc.source == str(path)
    assert r"lets BUILTIN\Users in" in exc.reason and "only SYSTEM and Administrators" in exc.reason
    assert FAKE_SECRET not in str(exc)


def test_windows_secret_file_whose_acl_cannot_be_read_is_refused(tmp_path):
    from endpoint.service._managed_common import read_secret_file

    def broken(_path: str) -> str:
        raise PermissionError("icacls failed (exit 5): Access is denied.")

    with pytest.raises(SettingsError, match="access control list cannot be read"):
        read_secret_file(_secret_file(tmp_path), trusted_uids=TRUSTED, platform="win32", acl_reader=broken)


def test_windows_secret_file_for_system_and_administrators_only_is_read(tmp_path):
    from endpoint.service._managed_common import read_secret_file

    asked: list[str] = []

    def reader(p: str) -> str:
        asked.append(p)
        return _as_icacls_of(ICACLS_PRIVATE, Path(p))

    path = _secret_file(tmp_path)
    assert read_secret_file(path, trusted_uids=TRUSTED, platform="win32", acl_reader=reader) == FAKE_SECRET
    assert asked == [str(path)]
    assert read_secret_file(path, trusted_uids=TRUSTED, platform="linux", acl_reader=reader) == FAKE_SECRET
    assert asked == [str(path)]  # the ACL is Windows' check only
