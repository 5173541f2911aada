"""The data dir's access control on Windows: SYSTEM and Administrators only, set explicitly.

``%PROGRAMDATA%`` lets every user create folders, and a folder's creator owns it: a user who made
``C:\\ProgramData\\agentroster`` before the daemon first ran would read its device key and spool, or
replace them. So at every start the daemon makes Administrators the owner of the data dir and of
everything in it, resets what is inside to inherit, and gives the dir a protected ACL (nothing inherited
from ``C:\\ProgramData``) that grants full control to SYSTEM and Administrators and to no one else.

It runs Windows' own ``icacls`` (by its full path under ``%SystemRoot%``, never through ``PATH``), with
well-known SIDs so that a localised Windows ("Administratoren") reads them the same. ``icacls_commands``
builds the exact command lines and is tested on every OS; ``restrict_data_dir`` runs them through a
``Runner`` (``subprocess`` on Windows).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

SYSTEM_SID = "S-1-5-18"  # NT AUTHORITY\SYSTEM
ADMINISTRATORS_SID = "S-1-5-32-544"  # BUILTIN\Administrators
#: what the dir's security descriptor reads as afterwards, in SDDL (``(Get-Acl DIR).Sddl``): owner
#: Administrators, a protected DACL granting SYSTEM and Administrators full control, inherited below
DATA_DIR_SDDL = "O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"


class Runner(Protocol):
    """Runs one command line; its exit code and what it printed (for the error message)."""

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]: ...


def icacls_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    system_root = env.get("SystemRoot") or env.get("SYSTEMROOT") or r"C:\Windows"
    return system_root.rstrip("\\") + r"\System32\icacls.exe"


def icacls_commands(data_dir: str, env: Mapping[str, str] | None = None) -> list[list[str]]:
    """The command lines, in order: owner, reset what is inside to inherit, then the dir's own ACL."""
    icacls = icacls_path(env)
    grant = [f"*{sid}:(OI)(CI)F" for sid in (SYSTEM_SID, ADMINISTRATORS_SID)]
    return [
        # the owner first: an owner can always rewrite the ACL, so a user who made the dir must not stay one
        [icacls, data_dir, "/setowner", f"*{ADMINISTRATORS_SID}", "/T", "/C", "/L", "/Q"],
        # explicit entries anyone added inside go; everything inside inherits from the dir
        [icacls, data_dir, "/reset", "/T", "/C", "/L", "/Q"],
        # the dir: nothing inherited from %PROGRAMDATA% (which grants Users), SYSTEM and Administrators only
        [icacls, data_dir, "/inheritance:r", "/grant:r", *grant, "/C", "/L", "/Q"],
    ]


def _subprocess_runner(argv: Sequence[str]) -> tuple[int, str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, (done.stderr or done.stdout).strip()


def restrict_data_dir(data_dir: str, run: Runner | None = None, env: Mapping[str, str] | None = None) -> None:
    """Apply the ACL; ``PermissionError`` naming the step when a command fails (the daemon does not
    keep its key in a dir it could not close)."""
    runner = run if run is not None else _subprocess_runner
    for argv in icacls_commands(data_dir, env):
        try:
            code, said = runner(argv)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PermissionError(f"{data_dir}: could not run icacls {argv[2]}: {exc}") from None
        if code != 0:
            raise PermissionError(f"{data_dir}: icacls {argv[2]} failed (exit {code}): {said[:200]}")
