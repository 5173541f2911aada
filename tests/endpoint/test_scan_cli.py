"""The `agentroster` command: signature checks with file:line, the readable table, bad arguments."""

from __future__ import annotations

from support import run_agentroster


def test_signatures_check_passes_on_the_shipped_packs():
    done = run_agentroster("signatures", "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signatures: ok" in done.stdout


def test_signatures_check_reports_file_and_line(tmp_path):
    pack = tmp_path / "bad.yaml"
    pack.write_text("pack: bad\nsignatures:\n  - id: Bad Id\n    name: x\n    vendor: y\n    type: coding\n")
    done = run_agentroster("signatures", "check", str(pack))
    assert done.returncode == 1
    assert f"{pack}:3" in done.stdout


def test_table_shows_agents_with_their_servers_under_them(tmp_path):
    home = tmp_path / "home" / "alice"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text(
        '{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}')
    done = run_agentroster("scan", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    cursor = next(i for i, line in enumerate(lines) if line.startswith("Cursor"))
    assert "└ fetch" in lines[cursor + 1] and "uvx mcp-server-fetch" in lines[cursor + 1]


def test_a_missing_root_is_a_clear_error():
    done = run_agentroster("scan", "--root", "/no/such/dir")
    assert done.returncode == 2 and "not a directory" in done.stderr
