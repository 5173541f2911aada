"""The daemon's settings as a table: name, kind, default and one sentence each.

One source for everything that lists the settings for an administrator: the macOS configuration
profile and its manifest, the Windows ADMX/ADML templates, the Linux ``endpoint.toml`` template and
docs/endpoint-settings.md (a test keeps the page and this table in step). What a value may be is
decided by ``endpoint.service.settings`` (its parsers); ``kind``, ``low``/``high`` and ``choices``
here say the same for the tools that build a form around it.
"""

from __future__ import annotations

from dataclasses import dataclass

from endpoint.service.settings import LOG_LEVELS, MAX_INTERVAL_S, SENSORS


@dataclass(frozen=True, slots=True)
class SettingDoc:
    name: str
    #: url, secret, path, seconds, number, size, list or choice
    kind: str
    #: the default as an administrator reads it ("" when there is none, or it depends on the OS)
    default: str
    summary: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    #: False for what an MDM should not set: the scanned root (a test setting)
    managed: bool = True


def _seconds(name: str, default: int, summary: str) -> SettingDoc:
    return SettingDoc(name, "seconds", str(default), summary, low=0, high=MAX_INTERVAL_S)


SETTINGS_TABLE: tuple[SettingDoc, ...] = (
    SettingDoc("collector_url", "url", "", "The collector, https://host[:port][/path]; plain http only for "
               "127.0.0.1, ::1 and localhost."),
    SettingDoc("enroll_secret", "secret", "", "The organisation's enrollment secret, used once to obtain a device "
               "key. Prefer enroll_secret_file: managed settings can be read by every local user."),
    SettingDoc("enroll_secret_file", "path", "", "A file holding the enroll secret, readable by root (SYSTEM) only, "
               "read when it is needed."),
    SettingDoc("ca_bundle", "path", "", "A PEM bundle to verify the collector's certificate (a private CA); the "
               "system store when unset."),
    SettingDoc("data_dir", "path", "", "Local state, device key and spool; /var/lib/agentroster, "
               "/Library/Application Support/agentroster or %PROGRAMDATA%\\agentroster by default."),
    _seconds("process_interval_s", 5, "How often new processes are looked at, in seconds."),
    _seconds("full_scan_interval_s", 3600, "How often processes and configs are scanned again in full, in seconds."),
    _seconds("snapshot_interval_s", 86400, "How often a full snapshot report is sent (deltas in between), in seconds."),
    _seconds("heartbeat_interval_s", 300, "How often a heartbeat is sent when nothing changed, in seconds."),
    _seconds("report_interval_s", 10, "How often pending changes are sent, in seconds."),
    SettingDoc("sensors", "list", ", ".join(sorted(SENSORS)), "The sensors that run; an empty list runs none "
               "(heartbeats only).", choices=tuple(sorted(SENSORS))),
    SettingDoc("max_cpu_percent", "number", "2", "Resource guard: the daemon's CPU limit in percent of one core; "
               "above it the daemon slows down, then turns the network sensor off.", low=0, high=100),
    SettingDoc("max_rss_mb", "number", "150", "Resource guard: the daemon's memory limit in MB.", low=0, high=1 << 20),
    SettingDoc("spool_max_bytes", "size", "52428800", "Cap on reports waiting for the collector, in bytes (or a size "
               "such as 50MiB)."),
    SettingDoc("drain_reports_per_s", "number", "5", "How fast a backlog is sent once the collector is back, in "
               "reports per second.", low=0, high=10_000),
    SettingDoc("root", "path", "/", "The filesystem to scan (a mounted image, for testing).", managed=False),
    SettingDoc("log_level", "choice", "info", "Log verbosity.", choices=LOG_LEVELS),
)

MANAGED_SETTINGS: tuple[SettingDoc, ...] = tuple(s for s in SETTINGS_TABLE if s.managed)


def setting_doc(name: str) -> SettingDoc:
    for doc in SETTINGS_TABLE:
        if doc.name == name:
            return doc
    raise KeyError(name)
