"""Where an administrator's settings come from on each OS, and the enroll secret file they name.

``managed_source`` picks this OS's source (the per-OS modules, psutil's style: ``_managed_common`` for
what the file sources share, then ``_managed_linux``, ``_managed_macos``, ``_managed_windows``);
``load_settings`` reads it. ``read_enroll_secret`` reads the secret when it is needed, with the checks
of a file only root (SYSTEM) may read. ``SettingsSource`` is what the daemon loads its settings from,
at start and again on a reload, and how it notices, cheaply, that the managed source changed.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping

from endpoint.scan.platforms import normalize_platform
from endpoint.service._managed_common import read_secret_file
from endpoint.service.settings import (
    Loaded,
    ManagedSource,
    Secret,
    Settings,
    SettingsError,
    SettingsProblem,
    load_daemon_settings,
    secret_from_file,
)


def managed_source(platform: str | None = None, root: str | os.PathLike[str] = "/") -> ManagedSource:
    """The managed source this OS uses; reading it is the caller's step (``load_settings``)."""
    plat = normalize_platform(platform)  # imported only on its OS: a plist or TOML parser costs start-up time
    if plat == "macos":
        from endpoint.service._managed_macos import MacManagedSource

        return MacManagedSource(root)
    if plat == "windows":
        from endpoint.service._managed_windows import WindowsManagedSource

        return WindowsManagedSource()
    from endpoint.service._managed_linux import LinuxManagedSource

    return LinuxManagedSource(root)


def read_enroll_secret(settings: Settings, *, trusted_uids: tuple[int, ...] | None = None) -> Secret | None:
    """The enroll secret: the value itself, or read now from ``enroll_secret_file`` (checked:
    a regular file owned by root or this user, readable by no one else); ``None`` when neither is set."""
    if settings.enroll_secret is not None:
        return settings.enroll_secret
    if settings.enroll_secret_file is None:
        return None
    text = read_secret_file(settings.enroll_secret_file, trusted_uids=trusted_uids)
    return secret_from_file(text, str(settings.enroll_secret_file))


def enroll_secret_problem(settings: Settings, origins: Mapping[str, str] | None = None) -> SettingsProblem | None:
    """Why the enroll secret file cannot be used (it exists but is not root's alone, or is not a secret),
    with the commands that fix it; None when it is fine or absent.

    Anyone who can read the file can enroll as a device of the org, so such a file is not used: the
    device does not enroll, and the daemon still runs and spools. A file removed once the device is
    enrolled is fine (MDM may take it back). On Windows, where mode bits mean nothing, the installer
    sets its ACL (SYSTEM and Administrators only).
    """
    path = settings.enroll_secret_file
    if path is None or not os.path.lexists(path):
        return None
    try:
        read_enroll_secret(settings)
    except (SettingsError, OSError) as exc:
        reason = exc.reason if isinstance(exc, SettingsError) else str(exc)
        origin = (origins or {}).get("enroll_secret_file", "default")
        return SettingsProblem("enroll_secret_file", f"{origin}: {path}" if origin != "default" else str(path),
                               f"{reason}. It must be a regular file owned by root and readable by root only: "
                               f"chown root {path} && chmod 0600 {path}",
                               "not used: the device does not enroll until it is fixed")
    return None


class SettingsSource:
    """Where the daemon's settings come from, read at start and again at each reload: the command line's
    flags (fixed for the process's life), this process's environment, and the OS's managed source."""

    def __init__(self, cli: Mapping[str, object], *, managed: ManagedSource | None,
                 env: Mapping[str, str] | None = None, platform: str | None = None) -> None:
        self.cli = dict(cli)
        self.managed = managed
        self.env = env
        self.platform = platform

    def load(self, previous: Loaded | None = None) -> Loaded:
        """The settings, a bad environment or managed value set aside as a problem (``load_daemon_settings``);
        a bad command-line value raises ``SettingsError``."""
        loaded = load_daemon_settings(self.cli, self.env, self.managed, self.platform, previous=previous)
        refused = enroll_secret_problem(loaded.settings, loaded.origins)
        if refused is not None:
            return Loaded(loaded.settings, loaded.origins, (*loaded.problems, refused))
        return loaded

    def stamp(self, settings: Settings) -> Hashable:
        """Something that changes when the managed source or the enroll secret file may have changed:
        the files' stat (one system call each), or the values of a source that is not a file (the registry)."""
        managed: Hashable = None
        path = getattr(self.managed, "path", None)
        if isinstance(path, os.PathLike | str):
            managed = _stat_stamp(path)
        elif self.managed is not None:
            try:
                found = self.managed.read()
                managed = repr(sorted((str(k), repr(v)) for k, v in found.values.items()))
            except SettingsError as exc:
                managed = str(exc)
            except Exception as exc:  # a registry that cannot be read now: compared as such, never raised
                managed = f"unreadable: {type(exc).__name__}"
        secret_file = _stat_stamp(settings.enroll_secret_file) if settings.enroll_secret_file else None
        return managed, secret_file


def _stat_stamp(path: str | os.PathLike[str]) -> Hashable:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        return exc.errno
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid, st.st_gid
