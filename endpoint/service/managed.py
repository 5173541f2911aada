"""Where an administrator's settings come from on each OS, and the enroll secret file they name.

``managed_source`` picks this OS's source (the per-OS modules, psutil's style: ``_managed_common`` for
what the file sources share, then ``_managed_linux``, ``_managed_macos``, ``_managed_windows``);
``load_settings`` reads it. ``read_enroll_secret`` reads the secret when it is needed, with the checks
of a file only root (SYSTEM) may read.
"""

from __future__ import annotations

import os

from endpoint.scan.platforms import normalize_platform
from endpoint.service._managed_common import read_secret_file
from endpoint.service.settings import ManagedSource, Secret, Settings, secret_from_file


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
