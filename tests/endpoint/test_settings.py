"""Endpoint settings: precedence of CLI, environment, managed config and defaults; strict values;
the enroll secret never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from endpoint.service import managed
from endpoint.service import settings as st
from endpoint.service.settings import Secret, SettingsError, StaticSource, describe, load_settings

FAKE_SECRET = "sk-ant-FAKE-enroll-0123456789abcdef"


def load(cli=None, env=None, managed=None, platform="linux"):
    """load_settings with no process environment unless one is given."""
    source = StaticSource(managed, where="/etc/agentroster/endpoint.toml") if managed is not None else None
    return load_settings(cli=cli, env=env or {}, managed=source, platform=platform)


def error(**kw) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        load(**kw)
    return info.value


# ---- defaults and precedence ---------------------------------------------------------------------


def test_defaults_when_nothing_is_set():
    settings, origins = load()
    assert settings == st.Settings(data_dir=Path("/var/lib/agentroster"))
    assert settings.collector_url is None and settings.enroll_secret is None
    assert settings.sensors == {"processes", "files", "network"}
    assert set(origins) == set(st.SETTING_NAMES)
    assert set(origins.values()) == {"default"}


@pytest.mark.parametrize(("platform", "env", "expected"), [
    ("linux", {}, "/var/lib/agentroster"),
    ("darwin", {}, "/Library/Application Support/agentroster"),
    ("macos", {}, "/Library/Application Support/agentroster"),
    ("win32", {}, r"C:\ProgramData\agentroster"),
    ("windows", {"PROGRAMDATA": r"D:\Data"}, r"D:\Data\agentroster"),
])
def test_data_dir_default_per_os(platform, env, expected):
    settings, origins = load_settings(env=env, platform=platform)
    assert str(settings.data_dir) == expected
    assert origins["data_dir"] == "default"


def test_cli_beats_env_beats_managed_beats_default():
    managed = {"process_interval_s": 7, "full_scan_interval_s": 1800, "heartbeat_interval_s": 60}
    env = {"AGENTROSTER_PROCESS_INTERVAL_S": "3", "AGENTROSTER_FULL_SCAN_INTERVAL_S": "900"}
    settings, origins = load(cli={"process_interval_s": 1.5}, env=env, managed=managed)
    assert settings.process_interval_s == 1.5 and origins["process_interval_s"] == "cli"
    assert settings.full_scan_interval_s == 900 and origins["full_scan_interval_s"] == "env:AGENTROSTER_FULL_SCAN_INTERVAL_S"
    assert settings.heartbeat_interval_s == 60
    assert origins["heartbeat_interval_s"] == "managed:/etc/agentroster/endpoint.toml"
    assert settings.report_interval_s == 10.0 and origins["report_interval_s"] == "default"


def test_cli_flags_not_given_are_none_and_do_not_override():
    settings, origins = load(cli={"collector": None, "data_dir": None, "once": True, "print_settings": False},
                             env={"AGENTROSTER_DATA_DIR": "/srv/agentroster"})
    assert settings.data_dir == Path("/srv/agentroster")
    assert origins["data_dir"] == "env:AGENTROSTER_DATA_DIR"


def test_cli_relative_paths_are_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings, _ = load(cli={"data_dir": "state", "enroll_secret_file": Path("secret")})
    assert settings.data_dir == tmp_path / "state"
    assert settings.enroll_secret_file == tmp_path / "secret"
    exc = error(env={"AGENTROSTER_DATA_DIR": "state"})  # only a typed path is relative to somewhere
    assert "absolute path" in exc.reason


def test_cli_collector_flag_sets_the_collector_url():
    settings, origins = load(cli={"collector": "https://collector.example.com"})
    assert settings.collector_url == "https://collector.example.com"
    assert origins["collector_url"] == "cli"


def test_empty_environment_variable_counts_as_unset():
    settings, origins = load(env={"AGENTROSTER_LOG_LEVEL": "  "}, managed={"log_level": "debug"})
    assert settings.log_level == "debug"
    assert origins["log_level"].startswith("managed:")


def test_process_environment_is_used_when_env_is_not_given(monkeypatch):
    monkeypatch.setenv("AGENTROSTER_REPORT_INTERVAL_S", "2.5")
    settings, origins = load_settings(platform="linux")
    assert settings.report_interval_s == 2.5
    assert origins["report_interval_s"] == "env:AGENTROSTER_REPORT_INTERVAL_S"


def test_every_field_has_its_environment_variable():
    env = {
        "AGENTROSTER_COLLECTOR_URL": "https://c.example.com:8443/agentroster",
        "AGENTROSTER_ENROLL_SECRET": FAKE_SECRET,
        "AGENTROSTER_CA_BUNDLE": "/etc/ssl/corp.pem",
        "AGENTROSTER_DATA_DIR": "/srv/ar",
        "AGENTROSTER_PROCESS_INTERVAL_S": "1",
        "AGENTROSTER_FULL_SCAN_INTERVAL_S": "600",
        "AGENTROSTER_SNAPSHOT_INTERVAL_S": "43200",
        "AGENTROSTER_HEARTBEAT_INTERVAL_S": "120",
        "AGENTROSTER_REPORT_INTERVAL_S": "5",
        "AGENTROSTER_SENSORS": "processes, files",
        "AGENTROSTER_MAX_CPU_PERCENT": "1.5",
        "AGENTROSTER_MAX_RSS_MB": "100",
        "AGENTROSTER_SPOOL_MAX_BYTES": "10MiB",
        "AGENTROSTER_DRAIN_REPORTS_PER_S": "20",
        "AGENTROSTER_ROOT": "/mnt/image",
        "AGENTROSTER_LOG_LEVEL": "WARN",
    }
    settings, origins = load(env=env)
    assert settings == st.Settings(
        collector_url="https://c.example.com:8443/agentroster", enroll_secret=Secret(FAKE_SECRET),
        ca_bundle=Path("/etc/ssl/corp.pem"), data_dir=Path("/srv/ar"), process_interval_s=1.0,
        full_scan_interval_s=600.0, snapshot_interval_s=43200.0, heartbeat_interval_s=120.0,
        report_interval_s=5.0, sensors=frozenset({"processes", "files"}), max_cpu_percent=1.5,
        max_rss_mb=100.0, spool_max_bytes=10 * 1024 * 1024, drain_reports_per_s=20.0,
        root=Path("/mnt/image"), log_level="warning")
    assert origins["enroll_secret_file"] == "default"
    assert all(origins[name] == f"env:{st.env_name(name)}" for name in st.SETTING_NAMES
               if name != "enroll_secret_file")


def test_managed_values_keep_their_native_types():
    settings, _ = load(managed={"sensors": ["network"], "spool_max_bytes": 1_000_000, "max_rss_mb": 80,
                                "collector_url": "https://c.example.com"})
    assert settings.sensors == {"network"}
    assert settings.spool_max_bytes == 1_000_000
    assert settings.max_rss_mb == 80.0


@pytest.mark.parametrize(("raw", "expected"), [
    ("52428800", 52428800), ("50MiB", 50 * 1024**2), ("2 GB", 2 * 1000**3), ("64k", 64_000), (4096, 4096),
    (1e6, 1_000_000),
])
def test_spool_size_accepts_bytes_and_units(raw, expected):
    settings, _ = load(managed={"spool_max_bytes": raw})
    assert settings.spool_max_bytes == expected


def test_empty_sensor_list_turns_every_sensor_off():
    settings, _ = load(managed={"sensors": []})
    assert settings.sensors == frozenset()


# ---- strict values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "raw", "reason"), [
    ("process_interval_s", "0", "more than 0 seconds"),
    ("heartbeat_interval_s", -5, "more than 0 seconds"),
    ("report_interval_s", "soon", "expected a number"),
    ("full_scan_interval_s", "nan", "finite number"),
    ("snapshot_interval_s", 10**9, "at most"),
    ("report_interval_s", True, "expected a number, got a boolean"),
    ("max_cpu_percent", 0, "more than 0"),
    ("max_cpu_percent", 150, "at most 100"),
    ("max_rss_mb", "-1", "more than 0"),
    ("spool_max_bytes", "lots", "size in bytes"),
    ("spool_max_bytes", "50 parsecs", "size in bytes"),
    ("spool_max_bytes", 0, "more than 0 bytes"),
    ("drain_reports_per_s", [], "expected a number, got a list"),
    ("sensors", "processes,keylogger", "unknown sensor 'keylogger'"),
    ("sensors", 3, "expected a list of sensor names"),
    ("log_level", "loud", "must be one of debug"),
    ("data_dir", "var/lib/agentroster", "absolute path"),
    ("root", "", "is empty"),
    ("ca_bundle", {"path": "/x"}, "expected a string, got a table"),
    ("collector_url", b"https://c.example.com", "expected a string, got binary data"),
])
def test_bad_value_names_the_field_the_source_and_why(field, raw, reason):
    exc = error(managed={field: raw})
    assert exc.field == field
    assert exc.source == "managed:/etc/agentroster/endpoint.toml"
    assert reason in exc.reason
    assert str(exc).startswith(f"{field} (from managed:/etc/agentroster/endpoint.toml): ")


def test_bad_value_from_env_names_the_variable():
    exc = error(env={"AGENTROSTER_MAX_RSS_MB": "lots"})
    assert exc.source == "env:AGENTROSTER_MAX_RSS_MB"
    assert "max_rss_mb" in str(exc) and "'lots'" in str(exc)


def test_bad_managed_value_overridden_by_cli_is_not_an_error():
    settings, _ = load(cli={"max_rss_mb": 90}, managed={"max_rss_mb": "lots"})
    assert settings.max_rss_mb == 90


@pytest.mark.parametrize("url", [
    "https://collector.example.com", "https://10.0.0.5:8443/ingest", "http://127.0.0.1:8080",
    "http://127.1.2.3", "http://[::1]:9000/", "http://localhost:8000", "HTTPS://Collector.Example.COM",
])
def test_collector_url_accepted(url):
    settings, _ = load(env={"AGENTROSTER_COLLECTOR_URL": url})
    assert settings.collector_url == url


@pytest.mark.parametrize(("url", "reason"), [
    ("http://collector.example.com", "must use https"),
    ("http://10.0.0.5", "must use https"),
    ("http://localhost.example.com", "must use https"),
    ("ftp://collector.example.com", "scheme is 'ftp'"),
    ("collector.example.com", "must be an https:// URL"),
    ("https://", "has no host"),
    ("https:///path", "has no host"),
    ("https://c.example.com:99999", "not a valid URL"),
    ("https://c.example.com:port", "not a valid URL"),
    ("https://c.example .com", "spaces or control characters"),
    ("https://admin:hunter2@c.example.com", "user name or password"),
])
def test_collector_url_refused(url, reason):
    exc = error(cli={"collector_url": url})
    assert exc.field == "collector_url" and exc.source == "cli"
    assert reason in exc.reason
    assert "hunter2" not in str(exc)


def test_windows_paths_are_checked_as_windows_paths():
    settings, _ = load(env={"AGENTROSTER_DATA_DIR": r"D:\agentroster"}, platform="windows")
    assert str(settings.data_dir) == r"D:\agentroster"
    exc = error(env={"AGENTROSTER_DATA_DIR": r"agentroster\data"}, platform="windows")
    assert "absolute path" in exc.reason


def test_unknown_managed_keys_are_warnings_not_errors(caplog):
    with caplog.at_level(logging.WARNING, logger="agentroster.settings"):
        settings, _ = load(managed={"colector_url": "https://c.example.com", "process_interval_s": 2})
    assert settings.process_interval_s == 2
    assert settings.collector_url is None
    assert settings.warnings == ("/etc/agentroster/endpoint.toml: unknown key 'colector_url' ignored",)
    assert "unknown key 'colector_url'" in caplog.text


def test_unknown_cli_keys_belong_to_the_cli_and_are_ignored():
    settings, _ = load(cli={"once": True, "json": False})
    assert settings.warnings == ()


# ---- the enroll secret -----------------------------------------------------------------------------


def test_secret_is_never_in_repr_str_format_or_describe():
    settings, origins = load(env={"AGENTROSTER_ENROLL_SECRET": FAKE_SECRET})
    assert settings.enroll_secret is not None
    assert settings.enroll_secret.reveal() == FAKE_SECRET
    shown = [repr(settings), str(settings), f"{settings.enroll_secret}", f"{settings.enroll_secret!r:>40}",
             *describe(settings, origins)]
    assert not any(FAKE_SECRET in text for text in shown)
    assert not any("enroll-0123" in text for text in shown)


def test_secret_is_stripped_and_compared_by_value():
    settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET": f"  {FAKE_SECRET}\n"})
    assert settings.enroll_secret == Secret(FAKE_SECRET)
    assert settings.enroll_secret != Secret(FAKE_SECRET + "x")


@pytest.mark.parametrize(("raw", "reason"), [
    (f"{FAKE_SECRET}\x07", "control characters"),
    ("   ", None),  # an all-blank env variable is unset, not an error
    (FAKE_SECRET * 200, "longer than"),
])
def test_bad_secret_error_never_echoes_it(raw, reason, caplog):
    with caplog.at_level(logging.DEBUG):
        if reason is None:
            settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET": raw})
            assert settings.enroll_secret is None
            return
        exc = error(env={"AGENTROSTER_ENROLL_SECRET": raw})
    assert exc.field == "enroll_secret" and reason in exc.reason
    assert FAKE_SECRET not in str(exc) and FAKE_SECRET not in repr(exc.args)
    assert FAKE_SECRET not in caplog.text


def test_secret_in_the_wrong_field_is_not_echoed():
    exc = error(env={"AGENTROSTER_COLLECTOR_URL": FAKE_SECRET, "AGENTROSTER_ENROLL_SECRET": FAKE_SECRET})
    assert exc.field == "collector_url"
    assert FAKE_SECRET not in str(exc)
    exc = error(env={"AGENTROSTER_LOG_LEVEL": FAKE_SECRET})
    assert FAKE_SECRET not in str(exc) and "35-character string, not shown" in str(exc)


def test_secret_and_secret_file_from_one_source_is_an_error():
    exc = error(managed={"enroll_secret": FAKE_SECRET, "enroll_secret_file": "/etc/agentroster/secret"})
    assert "either enroll_secret or enroll_secret_file" in exc.reason
    assert FAKE_SECRET not in str(exc)


def test_secret_file_from_a_higher_source_replaces_a_managed_secret():
    settings, origins = load(cli={"enroll_secret_file": "/run/secrets/enroll"},
                             managed={"enroll_secret": FAKE_SECRET})
    assert settings.enroll_secret is None
    assert settings.enroll_secret_file == Path("/run/secrets/enroll")
    assert origins["enroll_secret"] == "overridden by enroll_secret_file"
    assert settings.warnings == ("enroll_secret from managed:/etc/agentroster/endpoint.toml ignored: "
                                 "enroll_secret_file from cli takes precedence",)
    assert not any(FAKE_SECRET in line for line in describe(settings, origins))


def test_secret_from_env_replaces_a_managed_secret_file():
    settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET": FAKE_SECRET},
                       managed={"enroll_secret_file": "/etc/agentroster/secret"})
    assert settings.enroll_secret == Secret(FAKE_SECRET)
    assert settings.enroll_secret_file is None


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_read_enroll_secret_reads_a_private_file(tmp_path):
    path = write_secret(tmp_path / "enroll", FAKE_SECRET + "\n")
    settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET_FILE": str(path)})
    assert managed.read_enroll_secret(settings) == Secret(FAKE_SECRET)


def test_read_enroll_secret_prefers_the_value_and_is_none_without_either():
    settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET": FAKE_SECRET})
    assert managed.read_enroll_secret(settings) == Secret(FAKE_SECRET)
    assert managed.read_enroll_secret(load()[0]) is None


@pytest.mark.parametrize(("mode", "reason"), [(0o644, "can be read by group or others"),
                                              (0o640, "can be read by group or others"),
                                              (0o666, "world-writable")])
def test_read_enroll_secret_refuses_a_file_others_can_read(tmp_path, mode, reason):
    path = write_secret(tmp_path / "enroll", FAKE_SECRET, mode)
    settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET_FILE": str(path)})
    with pytest.raises(SettingsError) as info:
        managed.read_enroll_secret(settings)
    assert info.value.field == "enroll_secret_file" and reason in info.value.reason
    assert FAKE_SECRET not in str(info.value)


def test_read_enroll_secret_refuses_missing_empty_and_symlinked_files(tmp_path):
    empty = write_secret(tmp_path / "empty", "\n")
    link = tmp_path / "link"
    link.symlink_to(write_secret(tmp_path / "real", FAKE_SECRET))
    for path, reason in ((tmp_path / "missing", "no such file"), (empty, "is empty"), (link, "symbolic link")):
        settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET_FILE": str(path)})
        with pytest.raises(SettingsError) as info:
            managed.read_enroll_secret(settings)
        assert reason in info.value.reason
        assert FAKE_SECRET not in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown a file")
def test_read_enroll_secret_refuses_a_file_owned_by_another_user(tmp_path):
    path = write_secret(tmp_path / "enroll", FAKE_SECRET)
    os.chown(path, 65534, 65534)
    settings, _ = load(env={"AGENTROSTER_ENROLL_SECRET_FILE": str(path)})
    with pytest.raises(SettingsError) as info:
        managed.read_enroll_secret(settings)
    assert "owned by uid 65534, not root" in info.value.reason


# ---- describe and the managed source per OS ----------------------------------------------------------


def test_describe_gives_every_setting_its_value_and_origin():
    settings, origins = load(cli={"collector": "https://c.example.com"},
                             managed={"sensors": ["files", "processes"], "surprise": 1})
    lines = describe(settings, origins)
    assert len(lines) == len(st.SETTING_NAMES) + 1
    by_name = {line.split()[0]: line for line in lines if not line.startswith("warning:")}
    assert by_name["collector_url"].split() == ["collector_url", "https://c.example.com", "(cli)"]
    assert by_name["enroll_secret"].split() == ["enroll_secret", "(not", "set)", "(default)"]
    assert by_name["sensors"].split(maxsplit=1)[1].split() == ["files,", "processes", "(managed:/etc/agentroster/endpoint.toml)"]
    assert by_name["process_interval_s"].split() == ["process_interval_s", "5", "(default)"]
    assert lines[-1] == "warning: /etc/agentroster/endpoint.toml: unknown key 'surprise' ignored"


def test_describe_shows_a_set_secret_as_set():
    settings, origins = load(env={"AGENTROSTER_ENROLL_SECRET": FAKE_SECRET})
    line = next(line for line in describe(settings, origins) if line.startswith("enroll_secret "))
    assert line.split() == ["enroll_secret", "(set)", "(env:AGENTROSTER_ENROLL_SECRET)"]


@pytest.mark.parametrize(("platform", "where"), [
    ("linux", "/etc/agentroster/endpoint.toml"),
    ("darwin", "/Library/Managed Preferences/dev.agentroster.endpoint.plist"),
    ("win32", r"HKLM\SOFTWARE\Policies\agentroster"),
])
def test_each_os_has_its_managed_source(platform, where):
    assert managed.managed_source(platform).where == where
