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

The reader side checks that a file the daemon trusts with a secret (the enroll secret file) can be read
by SYSTEM and Administrators only: ``private_acl_problem`` parses what ``icacls <file>`` prints through
an ``AclReader`` (``icacls_reader`` on Windows; recorded output in the tests).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


class StatLike(Protocol):
    """What ``link_problem`` reads of a stat result: ``st_mode``, and ``st_file_attributes`` where there is
    one (``os.stat_result`` on Windows)."""

    @property
    def st_mode(self) -> int: ...


def link_problem(st: StatLike) -> str | None:
    """Why a data dir (its ``os.lstat``) must not be used, in words; None when it is a plain folder.

    A junction or a symbolic link planted at ``C:\\ProgramData\\agentroster`` before the first start
    would send the daemon's key and spool into a folder the planter reads, or send SYSTEM's writes (and
    icacls's owner and ACL changes) into one it chose. ``os.lstat`` does not follow either: a symbolic
    link has ``S_IFLNK``, a junction (a mount point) has ``FILE_ATTRIBUTE_REPARSE_POINT`` in
    ``st_file_attributes``, as has every other reparse point (which a data dir has no use for)."""
    if stat.S_ISLNK(st.st_mode) or getattr(st, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_REPARSE_POINT:
        return ("it is a junction or a symbolic link (a reparse point), not a folder; someone other than the "
                "installer may have put it there: remove the link (rmdir removes a link, not its target) and "
                "start the service again")
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder: remove it and start the service again"
    return None


def restrict_data_dir(data_dir: str, run: Runner | None = None, env: Mapping[str, str] | None = None) -> None:
    """Apply the ACL; ``PermissionError`` naming the step when a command fails (the daemon does not
    keep its key in a dir it could not close), or when the data dir is a link (``link_problem``): it is
    looked at before icacls changes anything, and again after (a link swapped in meanwhile)."""
    refuse_link(data_dir)
    runner = run if run is not None else _subprocess_runner
    for argv in icacls_commands(data_dir, env):
        try:
            code, said = runner(argv)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PermissionError(f"{data_dir}: could not run icacls {argv[2]}: {exc}") from None
        if code != 0:
            raise PermissionError(f"{data_dir}: icacls {argv[2]} failed (exit {code}): {said[:200]}")
    refuse_link(data_dir)


def refuse_link(data_dir: str) -> None:
    """``PermissionError`` when the data dir is a junction, a symbolic link or no folder (``link_problem``)."""
    try:
        st = os.lstat(data_dir)
    except FileNotFoundError:  # nothing there: no link to refuse (and icacls says it found nothing)
        return
    why = link_problem(st)
    if why is not None:
        raise PermissionError(f"{data_dir}: refused: {why}")


# -- the reader side: who can read a file -----------------------------------------------------------------

#: who may read a root-only file, as ``icacls`` prints them (English Windows) or as bare SIDs
PRIVATE_READERS = frozenset({r"nt authority\system", r"builtin\administrators", SYSTEM_SID.lower(),
                             ADMINISTRATORS_SID.lower()})
_FLAGS = frozenset({"I", "OI", "CI", "IO", "NP", "DENY"})
_ACE_RE = re.compile(r"^(?P<who>[^:()]+?):(?P<perms>(?:\([A-Z,]+\))+)$")


class AclReader(Protocol):
    """What ``icacls <path>`` prints for one file; ``PermissionError`` when it cannot be run."""

    def __call__(self, path: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Ace:
    """One entry of a file's ACL as ``icacls`` shows it: ``BUILTIN\\Users:(I)(RX)``."""

    principal: str
    flags: frozenset[str]  # I (inherited), OI, CI, IO (inherit only), NP, DENY
    rights: str  # F, M, RX, R, W, N, or a list of specific rights ("WD,AD,WEA,WA")

    @property
    def applies_to_the_file(self) -> bool:
        return "IO" not in self.flags  # an inherit-only entry is for what a folder holds, not for it

    @property
    def allows(self) -> bool:
        return "DENY" not in self.flags and self.rights != "N"


def parse_icacls(output: str, path: str) -> list[Ace]:
    """The entries of ``icacls <path>``'s output; ``ValueError`` when the output is not one file's ACL
    as icacls prints it (then nothing about the file is known)."""
    lines = [line.rstrip() for line in output.splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].lower().startswith(path.lower() + " "):
        raise ValueError("icacls did not list the file")
    entries = [lines[0][len(path):].strip()]
    for line in lines[1:]:
        if not line.strip():
            break  # then "Successfully processed 1 files; …"
        entries.append(line.strip())
    aces = []
    for entry in entries:
        match = _ACE_RE.match(entry)
        if match is None:
            raise ValueError("an entry of icacls's output is not principal:(rights)")
        groups = re.findall(r"\(([A-Z,]+)\)", match["perms"])
        flags = frozenset(g for g in groups if g in _FLAGS)
        rights = ",".join(g for g in groups if g not in _FLAGS)
        if not rights:
            raise ValueError("an entry of icacls's output grants no rights")
        aces.append(Ace(match["who"].strip(), flags, rights))
    return aces


def other_readers(aces: Sequence[Ace]) -> list[str]:
    """The principals besides SYSTEM and Administrators that an entry of the file's ACL allows in."""
    found: list[str] = []
    for ace in aces:
        if ace.applies_to_the_file and ace.allows and ace.principal.lower().lstrip("*") not in PRIVATE_READERS \
                and ace.principal not in found:
            found.append(ace.principal)
    return found


def icacls_reader(env: Mapping[str, str] | None = None) -> AclReader:
    """Runs Windows' own ``icacls <path>`` (by its full path) and returns what it printed."""
    icacls = icacls_path(env)

    def read(path: str) -> str:
        try:
            done = subprocess.run([icacls, path], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PermissionError(f"could not run icacls: {exc}") from None
        if done.returncode != 0:
            raise PermissionError(f"icacls failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:200]}")
        return done.stdout

    return read


def private_acl_problem(path: str, read: AclReader | None = None) -> str | None:
    """Why the file at ``path`` is not private to SYSTEM and Administrators, in words; None when it is."""
    reader = read if read is not None else icacls_reader()
    try:
        aces = parse_icacls(reader(path), path)
    except PermissionError as exc:
        return f"its access control list cannot be read ({exc})"
    except ValueError as exc:
        return f"its access control list cannot be understood ({exc})"
    others = other_readers(aces)
    if others:
        return (f"its access control list lets {', '.join(others)} in; only SYSTEM and Administrators may "
                "read it (give its folder the data dir's ACL, then icacls <file> /reset)")
    return None
