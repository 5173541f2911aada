"""The endpoint daemon's settings: CLI flags, then environment, then managed config, then defaults.

Everything here is pure: the environment and the managed-config source are passed in, and reading a
managed file or the registry happens in ``endpoint.service.managed`` and its per-OS modules
(``_managed_common``, ``_managed_linux``, ``_managed_macos``, ``_managed_windows``). Values are checked strictly; a bad one is a ``SettingsError`` that names the
field, where it came from and why, and never quotes a secret.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Protocol
from urllib.parse import urlsplit

from endpoint.errors import EndpointError
from endpoint.scan.platforms import Platform, default_data_dir, normalize_platform

log = logging.getLogger("agentroster.settings")


SENSORS = frozenset({"processes", "files", "network"})
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
ENV_PREFIX = "AGENTROSTER_"
MAX_INTERVAL_S = 30 * 86400.0  # longer than a month is a unit mistake, not a schedule
MAX_SECRET_CHARS = 4096
# CLI spellings that differ from the field names (the daemon's flags are short: --collector URL)
CLI_ALIASES = {"collector": "collector_url"}


class SettingsError(EndpointError, ValueError):
    """A setting has a bad value; says which field, from which source, and why (never the secret)."""

    code = "bad_setting"

    def __init__(self, field: str | None, source: str, reason: str) -> None:
        self.field = field
        self.source = source
        self.reason = reason
        where = f"{field} (from {source})" if field else source
        super().__init__(f"{where}: {reason}")


class Secret:
    """A credential value; ``repr``/``str``/``format`` never show it, ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
    collector_url: str | None = None  # https://…; http only for 127.0.0.1/::1/localhost
    enroll_secret: Secret | None = None
    enroll_secret_file: Path | None = None  # read at use time: managed.read_enroll_secret()
    ca_bundle: Path | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    process_interval_s: float = 5.0
    full_scan_interval_s: float = 3600.0
    snapshot_interval_s: float = 86400.0
    heartbeat_interval_s: float = 300.0
    report_interval_s: float = 10.0
    sensors: frozenset[str] = SENSORS
    max_cpu_percent: float = 2.0  # resource guard limit, percent of one core
    max_rss_mb: float = 150.0
    spool_max_bytes: int = 50 * 1024 * 1024
    drain_reports_per_s: float = 5.0
    root: Path = Path("/")
    log_level: str = "info"
    # not a setting: what was odd but not fatal while loading (unknown managed keys, overridden secrets)
    warnings: tuple[str, ...] = field(default=(), compare=False)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings) if f.name != "warnings")
PATH_SETTINGS = frozenset({"enroll_secret_file", "ca_bundle", "data_dir", "root"})


# ---- the managed-config source interface -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManagedValues:
    """What one managed source held: raw values by key, and where they were read (for origins)."""

    values: Mapping[str, object]
    where: str
    warnings: tuple[str, ...] = ()
    #: who else can read the source, when users other than root can ("other users can read it (mode
    #: 0644)"); an enroll secret is never taken from such a source
    exposed: str | None = None


class ManagedSource(Protocol):
    """A place an MDM or config-management tool writes settings: a file, a plist, a registry key."""

    @property
    def where(self) -> str: ...

    def read(self) -> ManagedValues:
        """The values found (empty when the source does not exist); ``SettingsError`` when refused."""
        ...


@dataclass(frozen=True, slots=True)
class StaticSource:
    """A managed source that is a plain mapping (for embedding and for tests of precedence)."""

    values: Mapping[str, object]
    where: str = "static"

    def read(self) -> ManagedValues:
        return ManagedValues(dict(self.values), self.where)


# ---- parsing one value ---------------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,16}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _shown(value: object) -> str:
    """A value fit for an error message: numbers and short plain words; anything else is described."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and _TOKEN_RE.match(value):
        return repr(value)
    return f"({_kind(value)}, not shown)"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"a {len(value)}-character string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, bytes | bytearray):
        return "binary data"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple | set | frozenset):
        return "a list"
    if value is None:
        return "an empty value"
    return type(value).__name__


class _Bad(EndpointError):
    """Internal: the reason a value was refused; load_settings adds field and source."""

    code = "bad_value"


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad(f"expected a number, got {_kind(value)}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError) as exc:
        raise _Bad(f"expected a number, got {_shown(value)}") from exc
    if not math.isfinite(number):
        raise _Bad(f"expected a finite number, got {_shown(value)}")
    return number


def _interval(value: object) -> float:
    seconds = _number(value)
    if seconds <= 0:
        raise _Bad(f"must be more than 0 seconds, got {_shown(value)}")
    if seconds > MAX_INTERVAL_S:
        raise _Bad(f"must be at most {MAX_INTERVAL_S:.0f} seconds (30 days), got {_shown(value)}")
    return seconds


def _bounded(low: float, high: float, unit: str) -> Callable[[object], float]:
    def parse(value: object) -> float:
        number = _number(value)
        if not low < number <= high:
            raise _Bad(f"must be more than {low:g} and at most {high:g} {unit}, got {_shown(value)}")
        return number

    return parse


def _size(value: object) -> int:
    if isinstance(value, bool):
        raise _Bad(f"expected a size in bytes, got {_kind(value)}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str) and (m := _SIZE_RE.match(value)) and m.group(2).lower() in _SIZE_UNITS:
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    else:
        raise _Bad(f"expected a size in bytes (e.g. 52428800 or \"50MiB\"), got {_shown(value)}")
    if not 0 < size <= 1 << 40:
        raise _Bad(f"must be more than 0 bytes and at most 1 TiB, got {_shown(value)}")
    return size


def _text(value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {_kind(value)}")
    return value


def _url(value: object) -> str:
    text = _text(value).strip()
    if not text:
        raise _Bad("is empty")
    if _CONTROL_RE.search(text) or " " in text:
        raise _Bad("contains spaces or control characters")
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        raise _Bad(f"is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme!r}" if _TOKEN_RE.match(scheme or "-") else "none"
        raise _Bad(f"must be an https:// URL (scheme is {shown})")
    if not host:
        raise _Bad("has no host")
    if parts.username is not None or parts.password is not None:
        raise _Bad("must not carry a user name or password; the device authenticates with its enroll secret")
    if scheme == "http" and not _is_loopback(host):
        raise _Bad("must use https; plain http is allowed only for 127.0.0.1, ::1 and localhost")
    return text


def shown_url(url: str) -> str:
    """A collector URL fit for a log line or the status: scheme, host, port and path, without a query or
    fragment (a token put there by mistake is not repeated)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a valid URL, not shown)"
    return parts._replace(query="", fragment="").geturl()


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret(value: object) -> Secret:
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {_kind(value)}")
    text = value.strip()
    if not text:
        raise _Bad("is empty")
    if len(text) > MAX_SECRET_CHARS:
        raise _Bad(f"is longer than {MAX_SECRET_CHARS} characters")
    if _CONTROL_RE.search(text):
        raise _Bad("contains control characters")
    return Secret(text)


def _path(platform: Platform) -> Callable[[object], Path]:
    def parse(value: object) -> Path:
        text = _text(value).strip()
        if not text:
            raise _Bad("is empty")
        if "\x00" in text:
            raise _Bad("contains a NUL character")
        pure = PureWindowsPath(text) if platform == "windows" else PurePosixPath(text)
        if not pure.is_absolute():
            raise _Bad("must be an absolute path")
        return Path(text)

    return parse


def _sensors(value: object) -> frozenset[str]:
    if isinstance(value, str):
        names = [n for n in re.split(r"[\s,]+", value) if n]
    elif isinstance(value, list | tuple | set | frozenset):
        names = []
        for item in value:
            if not isinstance(item, str):
                raise _Bad(f"expected sensor names, got {_kind(item)} in the list")
            names.append(item.strip())
    else:
        raise _Bad(f"expected a list of sensor names, got {_kind(value)}")
    names = [n.lower() for n in names]
    unknown = sorted(set(names) - SENSORS)
    if unknown:
        shown = ", ".join(_shown(n) for n in unknown)
        raise _Bad(f"unknown sensor {shown}; known: {', '.join(sorted(SENSORS))}")
    return frozenset(names)


def _log_level(value: object) -> str:
    text = _text(value).strip().lower()
    text = {"warn": "warning", "fatal": "critical"}.get(text, text)
    if text not in LOG_LEVELS:
        raise _Bad(f"must be one of {', '.join(LOG_LEVELS)}, got {_shown(value)}")
    return text


def _parsers(platform: Platform) -> dict[str, Callable[[object], object]]:
    path = _path(platform)
    return {
        "collector_url": _url,
        "enroll_secret": _secret,
        "enroll_secret_file": path,
        "ca_bundle": path,
        "data_dir": path,
        "process_interval_s": _interval,
        "full_scan_interval_s": _interval,
        "snapshot_interval_s": _interval,
        "heartbeat_interval_s": _interval,
        "report_interval_s": _interval,
        "sensors": _sensors,
        "max_cpu_percent": _bounded(0, 100, "percent of one core"),
        "max_rss_mb": _bounded(0, 1 << 20, "MB"),
        "spool_max_bytes": _size,
        "drain_reports_per_s": _bounded(0, 10_000, "reports per second"),
        "root": path,
        "log_level": _log_level,
    }


# ---- loading -------------------------------------------------------------------------------------


def _clean_key(key: object) -> str:
    text = str(key)
    return repr(text) if re.match(r"^[A-Za-z0-9_.-]{1,64}$", text) else "(an odd key name, not shown)"


def _cli_layer(cli: Mapping[str, object]) -> dict[str, tuple[object, str]]:
    layer: dict[str, tuple[object, str]] = {}
    for key, value in cli.items():
        name = CLI_ALIASES.get(key, key)
        # the CLI owns its other flags (--once, --print-settings); argparse already refused typos
        if name in SETTING_NAMES and value is not None:
            if name in PATH_SETTINGS and isinstance(value, str | os.PathLike):
                value = os.path.abspath(value)  # a path typed on the command line is relative to the cwd
            layer[name] = (value, "cli")
    return layer


def _env_layer(env: Mapping[str, str]) -> dict[str, tuple[object, str]]:
    layer: dict[str, tuple[object, str]] = {}
    for name in SETTING_NAMES:
        var = env_name(name)
        value = env.get(var)
        if value is not None and value.strip() != "":  # an empty variable counts as unset
            layer[name] = (value, f"env:{var}")
    return layer


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """A setting the daemon could not take as given, and what it uses instead; never quotes a secret."""

    setting: str | None  # None: the whole source (a managed file refused or unreadable)
    source: str  # "env:AGENTROSTER_X", "managed:<where>" or a file's path
    reason: str
    using: str  # what the daemon does instead, in words

    def __str__(self) -> str:
        where = f"{self.setting} (from {self.source})" if self.setting else self.source
        return f"{where}: {self.reason}; {self.using}"

    def as_dict(self) -> dict[str, str | None]:
        return {"setting": self.setting, "source": self.source, "problem": self.reason, "using": self.using,
                "message": str(self)}


@dataclass(frozen=True, slots=True)
class Loaded:
    """Settings as the daemon loaded them: values, where each came from, and what it could not take."""

    settings: Settings
    origins: dict[str, str]
    problems: tuple[SettingsProblem, ...] = ()


class _Collect:
    """Where a forgiving load puts what it refuses (a strict one raises instead), with the last good
    settings a reload falls back to."""

    def __init__(self, previous: Loaded | None) -> None:
        self.previous = previous
        self.problems: list[SettingsProblem] = []

    def fallback(self, name: str) -> tuple[object, str] | None:
        """The last good value of ``name`` and its origin, when there is one (a reload)."""
        if self.previous is None:
            return None
        origin = self.previous.origins.get(name, "default")
        if origin == "default" or origin.startswith("overridden"):
            return None
        return getattr(self.previous.settings, name), origin


def _managed_layer(managed: ManagedSource, warnings: list[str],
                   collect: _Collect | None = None) -> dict[str, tuple[object, str]]:
    try:
        found = managed.read()
    except SettingsError as exc:
        if collect is None:
            raise
        return _refused_source(managed, exc, collect)
    warnings.extend(found.warnings)
    layer: dict[str, tuple[object, str]] = {}
    origin = f"managed:{found.where}"
    values = dict(found.values)
    if "enroll_secret" in values and found.exposed:
        # refused even when another source's secret would win: the secret is readable there already
        reason = (f"holds enroll_secret, but {found.exposed}; refused: put the secret in a file only root "
                  "(SYSTEM) can read and set enroll_secret_file to its path instead")
        if collect is None:
            raise SettingsError("enroll_secret", origin, reason)
        del values["enroll_secret"]
        collect.problems.append(SettingsProblem("enroll_secret", origin, reason,
                                                "not used: the device does not enroll with it"))
    for key, value in values.items():
        if key in SETTING_NAMES:
            layer[key] = (value, origin)
        else:
            warnings.append(f"{found.where}: unknown key {_clean_key(key)} ignored")
    return layer


def _refused_source(managed: ManagedSource, exc: SettingsError, collect: _Collect) -> dict[str, tuple[object, str]]:
    """A managed source that cannot be read or is refused as a whole: at start, none of its values; on a
    reload, the values last taken from it."""
    origin = f"managed:{managed.where}"
    kept: dict[str, tuple[object, str]] = {}
    if collect.previous is not None:
        kept = {name: (getattr(collect.previous.settings, name), where)
                for name, where in collect.previous.origins.items() if where == origin}
    using = ("keeping the values last read from it" if kept
             else "using the defaults for the settings it would give")
    collect.problems.append(SettingsProblem(exc.field, origin if exc.field else f"managed:{exc.source}",
                                            exc.reason, using))
    return kept


def load_settings(cli: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
                  managed: ManagedSource | None = None,
                  platform: str | None = None) -> tuple[Settings, dict[str, str]]:
    """The effective settings and, per field, where its value came from.

    ``cli`` maps field names (or ``collector``) to values, ``None`` meaning "flag not given";
    ``env`` defaults to this process's environment (pass ``{}`` for none);
    ``managed`` is read once (``managed.managed_source(platform)`` gives this OS's; ``None`` reads none).
    Origins are ``"cli"``, ``"env:AGENTROSTER_X"``, ``"managed:<where>"`` or ``"default"``.
    Strict: the first bad value is a ``SettingsError`` (``load_daemon_settings`` goes on instead).
    """
    loaded = _load(cli, env, managed, platform, None)
    return loaded.settings, loaded.origins


def load_daemon_settings(cli: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
                         managed: ManagedSource | None = None, platform: str | None = None, *,
                         previous: Loaded | None = None) -> Loaded:
    """The settings a running daemon takes: as ``load_settings``, but a bad environment or managed value
    (or a managed source refused as a whole) is a ``SettingsProblem`` and the setting keeps its default
    or, on a reload (``previous``), its last good value. A bad command-line value is still a
    ``SettingsError``: a person typed it and is there to read the answer."""
    return _load(cli, env, managed, platform, _Collect(previous))


def _load(cli: Mapping[str, object] | None, env: Mapping[str, str] | None, managed: ManagedSource | None,
          platform: str | None, collect: _Collect | None) -> Loaded:
    plat = normalize_platform(platform)
    env = os.environ if env is None else env
    warnings: list[str] = []
    layers: list[dict[str, tuple[object, str]]] = [_cli_layer(cli or {}), _env_layer(env)]
    if managed is not None:
        layers.append(_managed_layer(managed, warnings, collect))

    parsers = _parsers(plat)
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for name in SETTING_NAMES:
        for layer in layers:
            if name in layer:
                raw, origin = layer[name]
                try:
                    values[name] = parsers[name](raw)
                except _Bad as exc:
                    if collect is None or origin == "cli":
                        raise SettingsError(name, origin, str(exc)) from None
                    _fall_back(name, origin, str(exc), values, origins, collect, plat, env)
                    break
                origins[name] = origin
                break
        else:
            origins[name] = "default"

    try:
        _one_secret(values, origins, layers, warnings)
    except SettingsError as exc:
        if collect is None:
            raise
        for name in ("enroll_secret", "enroll_secret_file"):
            values.pop(name, None)
            origins[name] = "default"
        collect.problems.append(SettingsProblem(exc.field, exc.source, exc.reason,
                                                "using neither: the device does not enroll until one is removed"))
    if "data_dir" not in values:
        values["data_dir"] = default_data_dir(plat, env)
    for line in warnings:
        log.warning("settings: %s", line)
    settings = Settings(**values, warnings=tuple(warnings))  # type: ignore[arg-type]
    return Loaded(settings, origins, tuple(collect.problems) if collect is not None else ())


def _fall_back(name: str, origin: str, reason: str, values: dict[str, object], origins: dict[str, str],
               collect: _Collect, plat: Platform, env: Mapping[str, str]) -> None:
    """A bad value from the environment or a managed source: the last good value, else the default."""
    kept = collect.fallback(name)
    if kept is not None:
        values[name], origins[name] = kept
        using = f"keeping its last good value ({_plain(name, kept[0])})"
    else:
        origins[name] = "default"
        default = default_data_dir(plat, env) if name == "data_dir" else _DEFAULTS.get(name)
        using = f"using the default ({_plain(name, default)})"
    collect.problems.append(SettingsProblem(name, origin, reason, using))


def describe_change(name: str, old: object, new: object, origin: str) -> str:
    """One log line for a setting that changed on a reload; a secret's value is never in it."""
    if name == "enroll_secret":
        return f"enroll_secret: changed, now {_plain(name, new)} (from {origin}; the value is not shown)"
    return f"{name}: {_plain(name, old)} -> {_plain(name, new)} (from {origin})"


def _plain(name: str, value: object) -> str:
    """A setting's value for a log line or the status: never the secret, a URL without its query."""
    if name == "enroll_secret":
        return "set" if value is not None else "not set"
    if name == "collector_url" and isinstance(value, str):
        return shown_url(value)
    if value is None:
        return "not set"
    if isinstance(value, frozenset):
        return ", ".join(sorted(value)) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_DEFAULTS: dict[str, object] = {f.name: f.default for f in fields(Settings)
                                if f.name in SETTING_NAMES and f.default is not MISSING}


def _one_secret(values: dict[str, object], origins: dict[str, str],
                layers: list[dict[str, tuple[object, str]]], warnings: list[str]) -> None:
    """The enroll secret and the secret file are one setting: the higher-precedence source wins."""
    if "enroll_secret" not in values or "enroll_secret_file" not in values:
        return
    rank = {id(layer): i for i, layer in enumerate(layers)}

    def level(name: str) -> int:
        return next(rank[id(layer)] for layer in layers if name in layer)

    a, b = level("enroll_secret"), level("enroll_secret_file")
    if a == b:
        raise SettingsError("enroll_secret", origins["enroll_secret"],
                            "set either enroll_secret or enroll_secret_file, not both")
    loser = "enroll_secret_file" if a < b else "enroll_secret"
    winner = "enroll_secret" if loser == "enroll_secret_file" else "enroll_secret_file"
    warnings.append(f"{loser} from {origins[loser]} ignored: {winner} from {origins[winner]} takes precedence")
    del values[loser]
    origins[loser] = f"overridden by {winner}"


# ---- using and showing settings ------------------------------------------------------------------


def secret_from_file(text: str, path: str) -> Secret:
    """An enroll secret file's text as the secret, checked as the setting's value is."""
    try:
        return _secret(text)
    except _Bad as exc:
        raise SettingsError("enroll_secret_file", path, str(exc)) from None


def _value_text(settings: Settings, name: str) -> str:
    """``_plain``'s text, with what is no value in parentheses: ``(set)``, ``(not set)``, ``(none)``."""
    value = getattr(settings, name)
    text = _plain(name, value)
    return f"({text})" if name == "enroll_secret" or value is None or value == frozenset() else text


def describe(settings: Settings, origins: Mapping[str, str]) -> list[str]:
    """One line per setting, ``name  value  (origin)``; the secret shows only as (set)/(not set)."""
    width = max(len(n) for n in SETTING_NAMES)
    values = {name: _value_text(settings, name) for name in SETTING_NAMES}
    value_width = min(max(len(v) for v in values.values()), 40)
    lines = [f"{name:<{width}}  {values[name]:<{value_width}}  ({origins.get(name, 'default')})"
             for name in SETTING_NAMES]
    lines.extend(f"warning: {w}" for w in settings.warnings)
    return lines
