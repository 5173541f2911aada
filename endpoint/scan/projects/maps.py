"""Native extensions a process has mapped (Linux ``/proc/PID/maps``): tiktoken's ``_tiktoken``, Hugging
Face ``tokenizers``. An LLM program loads these to count or split tokens, whatever its code looks like,
so they are a hint worth a line of evidence (never enough alone to name a framework).
"""

from __future__ import annotations

import os

PROC = "/proc"
MAPS_BYTES = 4 << 20  # a process with a huge address space is read this far
#: a mapped library's file name prefix -> the package it comes from
NATIVE = {"_tiktoken.": "tiktoken", "tokenizers.": "tokenizers", "tiktoken_": "tiktoken"}


def native_libraries(pid: int, proc: str = PROC) -> tuple[tuple[str, str], ...]:
    """(package, library file name) of each known native extension ``pid`` maps; () when unreadable."""
    try:
        fd = os.open(f"{proc}/{pid}/maps", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return ()
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAPS_BYTES:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return ()
    finally:
        os.close(fd)
    return libraries_in(b"".join(chunks))


def libraries_in(maps: bytes) -> tuple[tuple[str, str], ...]:
    """The known native extensions among the paths of a maps file's text."""
    if b"tiktoken" not in maps and b"tokenizers" not in maps:
        return ()  # most processes: one scan of the bytes, no line split
    found: dict[tuple[str, str], None] = {}
    for line in maps.splitlines():
        slash = line.find(b"/")
        if slash < 0 or b".so" not in line:
            continue
        name = os.path.basename(line[slash:].decode("utf-8", "replace").removesuffix(" (deleted)"))
        for prefix, package in NATIVE.items():
            if name.startswith(prefix) and ".so" in name:
                found[(package, name[:120])] = None
    return tuple(found)
