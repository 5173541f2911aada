"""Hostile and broken files in a home: each lands in errors[] with its reason; the rest of the scan completes."""

from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from endpoint.scan.run import ScanOptions, scan

FAKE_KEY = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE"


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    home = tmp_path / "home" / "alice"
    _write(home / ".codex" / "config.toml", '[mcp_servers.fetch]\ncommand = "uvx"\nargs = ["mcp-server-fetch"]\n')
    _write(home / ".claude.json", b"{" + b'"a": "' + b"x" * (1 << 20) + b'"}')  # over 1 MiB
    _write(home / ".codeium" / "windsurf" / "mcp_config.json", b"\x00\x01\x02binary\x00")
    _write(home / ".gemini" / "settings.json", '{"mcpServers": {"x": {"command": "np')  # truncated
    _write(home / ".cursor" / "mcp.json", '{"mcpServers": {"k": {"command": "caf\xe9"}}}'.encode("latin-1"))
    _write(home / ".config" / "goose" / "config.yaml", "extensions: !!python/object/apply:os.system ['true']\n")
    _write(home / ".config" / "Code" / "User" / "mcp.json", "[" * 100_000 + "]" * 100_000)
    (home / ".aws" / "amazonq").mkdir(parents=True)
    (home / ".aws" / "amazonq" / "mcp.json").symlink_to(tmp_path / "outside.json")
    _write(tmp_path / "outside.json", json.dumps({"mcpServers": {"leak": {"command": "cat"}}}))
    (home / ".kiro" / "settings").mkdir(parents=True)
    (home / ".kiro" / "settings" / "mcp.json").symlink_to(home / ".kiro" / "settings" / "loop.json")
    (home / ".kiro" / "settings" / "loop.json").symlink_to(home / ".kiro" / "settings" / "mcp.json")
    _write(home / ".config" / "zed" / "settings.json", f'{{"context_servers": {{}}, "k": "{FAKE_KEY}", ')
    return tmp_path


def _errors(document: dict) -> dict[str, str]:
    return {e["where"]: e["error"] for e in document["errors"]}


def test_each_bad_file_is_an_error_and_the_good_one_is_found(root: Path):
    document = scan(ScanOptions(root=str(root), processes=False))
    errors = _errors(document)
    home = "/home/alice"
    assert errors[f"{home}/.claude.json"] == "too_large"
    assert errors[f"{home}/.codeium/windsurf/mcp_config.json"] == "binary"
    assert errors[f"{home}/.gemini/settings.json"] == "syntax"
    assert errors[f"{home}/.cursor/mcp.json"] == "encoding"
    assert errors[f"{home}/.config/goose/config.yaml"] == "unsafe_yaml"
    assert errors[f"{home}/.config/Code/User/mcp.json"] == "too_deep"
    assert errors[f"{home}/.aws/amazonq/mcp.json"] == "symlink_escape"
    assert errors[f"{home}/.kiro/settings/mcp.json"] == "symlink_loop"
    names = {s["name"] for s in document["sightings"]}
    assert "fetch" in names and "leak" not in names
    assert FAKE_KEY not in json.dumps(document)


def test_special_files_are_never_opened(root: Path):
    home = root / "home" / "alice"
    (home / ".cursor" / "mcp.json").unlink()
    os.mkfifo(home / ".cursor" / "mcp.json")
    sock = socket.socket(socket.AF_UNIX)
    (home / ".codeium" / "windsurf" / "mcp_config.json").unlink()
    # bound at a short path and moved into place: a socket's path is at most 107 bytes, and pytest's
    # tmp folders grow longer with each run on a machine (pytest-of-root/pytest-1081/…)
    with tempfile.TemporaryDirectory(prefix="ar-", dir="/tmp") as short:
        sock.bind(os.path.join(short, "s"))
        os.rename(os.path.join(short, "s"), home / ".codeium" / "windsurf" / "mcp_config.json")
    try:
        if os.geteuid() == 0:
            (home / ".gemini" / "settings.json").unlink()
            os.mknod(home / ".gemini" / "settings.json", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero
        document = scan(ScanOptions(root=str(root), processes=False))
    finally:
        sock.close()
    errors = _errors(document)
    assert errors["/home/alice/.cursor/mcp.json"] == "not_regular"
    assert errors["/home/alice/.codeium/windsurf/mcp_config.json"] == "not_regular"
    if os.geteuid() == 0:
        assert errors["/home/alice/.gemini/settings.json"] == "not_regular"
