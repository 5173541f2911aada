"""The `agentroster` command: signature checks with file:line, the readable table, bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import AGENTROSTER, run_agentroster


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


def scan_table_of_cursor_servers(root, servers: dict) -> subprocess.CompletedProcess[str]:
    """``agentroster scan`` (the table) over ``root`` whose one home, alice's, holds Cursor's ``servers``."""
    home = root / "home" / "alice"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    done = run_agentroster("scan", "--root", str(root))
    assert done.returncode == 0, done.stderr
    return done


def test_table_shows_agents_with_their_servers_under_them(tmp_path):
    done = scan_table_of_cursor_servers(tmp_path, {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}})
    lines = done.stdout.splitlines()
    cursor = next(i for i, line in enumerate(lines) if line.startswith("Cursor"))
    assert "└ fetch" in lines[cursor + 1] and "uvx mcp-server-fetch" in lines[cursor + 1]


def test_a_missing_root_is_a_clear_error():
    done = run_agentroster("scan", "--root", "/no/such/dir")
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_json_in_a_pipe_is_one_compact_utf8_document_even_for_undecodable_file_names(tmp_path):
    project = tmp_path.joinpath("home", "alice").__bytes__() + b"/caf\xe9"
    os.makedirs(project + b"/.git")
    with open(project + b"/.mcp.json", "w") as fh:
        fh.write('{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}')
    done = subprocess.run([AGENTROSTER, "scan", "--json", "--root", str(tmp_path)], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("utf-8")  # strict: a lone surrogate written raw would fail here
    assert text.count("\n") == 1
    document = json.loads(text)
    assert any(s["name"] == "fetch" for s in document["sightings"])


_MODULES_OF_A_SCAN = """
import json, sys
from endpoint import cli
cli.main(["scan", "--json", "--no-processes", "--root", sys.argv[1], "-o", sys.argv[2]])
print(json.dumps(sorted({m.split(".")[0] + ("." + m.split(".")[1] if m.startswith("console.") else "")
                         for m in sys.modules if m.startswith(("console", "pydantic", "PySide6", "fastapi"))})))
"""


def test_a_warm_scan_imports_neither_the_console_nor_pydantic(tmp_path):
    env = {**os.environ, "AGENTROSTER_CACHE_DIR": str(tmp_path / "cache")}
    argv = [sys.executable, "-c", _MODULES_OF_A_SCAN, str(tmp_path), str(tmp_path / "out.json")]
    runs = [subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=True) for _ in range(2)]
    assert json.loads(runs[1].stdout) == []
    assert json.loads((tmp_path / "out.json").read_text())["schema"] == "agentroster.scan/1"


_PARSERS_OF_A_SCAN = """
import json, sys
from endpoint import cli
cli.main(["scan", "--json", "--no-processes", "--root", sys.argv[1], "-o", sys.argv[2]])
print(json.dumps(sorted(m for m in ("yaml", "tomllib", "datetime") if m in sys.modules)))
"""


def _parsers_imported(root, tmp_path) -> tuple[list[str], dict]:
    out = tmp_path / f"{root.name}.json"
    env = {**os.environ, "AGENTROSTER_CACHE_DIR": str(tmp_path / "cache")}
    argv = [sys.executable, "-c", _PARSERS_OF_A_SCAN, str(root), str(out)]
    runs = [subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=True) for _ in range(2)]
    return json.loads(runs[1].stdout), json.loads(out.read_text())


def test_yaml_and_toml_parsers_are_imported_only_by_a_scan_that_meets_such_a_file(tmp_path):
    only_json = tmp_path / "only-json"
    (only_json / "home" / "alice" / ".cursor").mkdir(parents=True)
    (only_json / "home" / "alice" / ".cursor" / "mcp.json").write_text(
        '{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}')
    imported, document = _parsers_imported(only_json, tmp_path)
    assert imported == []
    assert any(s["name"] == "fetch" for s in document["sightings"])

    mixed = tmp_path / "mixed"
    (mixed / "home" / "bob" / ".config" / "goose").mkdir(parents=True)
    (mixed / "home" / "bob" / ".config" / "goose" / "config.yaml").write_text(
        "extensions:\n  fetch:\n    type: stdio\n    cmd: uvx\n    args: [mcp-server-fetch]\n    enabled: true\n")
    (mixed / "home" / "bob" / ".codex").mkdir(parents=True)
    (mixed / "home" / "bob" / ".codex" / "config.toml").write_text(
        '[mcp_servers.github]\ncommand = "npx"\nargs = ["-y", "@modelcontextprotocol/server-github"]\n')
    imported, document = _parsers_imported(mixed, tmp_path)
    assert {"tomllib", "yaml"} <= set(imported)  # (PyYAML brings datetime along)
    assert {"fetch", "github"} <= {s["name"] for s in document["sightings"]}


def test_scanned_at_is_what_datetime_writes_in_utc_to_the_second():
    from datetime import UTC, datetime

    from endpoint.scan.run import scanned_at

    for seconds in (0.0, 951_782_400.0, 1_767_225_599.999, 4_102_444_800.5):  # incl. a leap day and 2100
        assert scanned_at(seconds) == datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def test_a_scan_leaves_the_garbage_collector_as_it_found_it(tmp_path, capsys):
    import gc

    from endpoint import cli

    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert cli.main(["scan", "--json", "--no-processes", "--root", str(tmp_path)]) == 0
            assert gc.isenabled() is enabled
            assert json.loads(capsys.readouterr().out)["schema"] == "agentroster.scan/1"
    finally:
        (gc.enable if was else gc.disable)()


def test_table_explains_each_flag_it_shows_and_what_to_do(tmp_path):
    done = scan_table_of_cursor_servers(
        tmp_path, {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/"]}})
    legend = done.stdout.split("\nFLAGS\n", 1)[1].splitlines()
    assert [line.split()[0] for line in legend] == ["broad_tools"]
    assert "shell, the whole disk" in legend[0] and "Next: limit its tools" in legend[0]


def test_table_says_so_when_nothing_is_found_and_counts_in_words(tmp_path):
    (tmp_path / "home").mkdir()
    done = run_agentroster("scan", "--root", str(tmp_path), "--no-processes")
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()[:2]
    assert "— 0 sightings, " in first and second == "No AI agent, MCP server or LLM call was found."
    assert "FLAGS" not in done.stdout


def test_every_flag_has_a_meaning_and_a_next_step():
    from contract.scan import COLLECTOR_FLAGS, ENDPOINT_FLAGS, FLAG_MEANINGS, FLAG_NEXT_STEPS

    assert set(FLAG_MEANINGS) == set(FLAG_NEXT_STEPS) == COLLECTOR_FLAGS | ENDPOINT_FLAGS
