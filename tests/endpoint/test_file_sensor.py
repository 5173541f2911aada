"""The file sensor on a real tree: what a config record carries, and the folder listings that speed it up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import signatures
from endpoint.scan.evidence import ConfigRecord
from endpoint.scan.homes import find_homes
from endpoint.scan.sensors.files import FileScan

FIXTURES = Path(__file__).parents[1] / "fixtures" / "configs"


@pytest.fixture(scope="module")
def lib() -> signatures.Library:
    return signatures.load()


def configs(lib: signatures.Library, root: Path) -> dict[str, ConfigRecord]:
    found = FileScan(lib, str(root)).run(find_homes(str(root)))
    return {r.display_path: r for r in found if isinstance(r, ConfigRecord)}


def test_a_config_record_carries_the_providers_its_file_selects(lib, tmp_path: Path) -> None:
    home = tmp_path / "home" / "alice"
    (home / ".config" / "goose").mkdir(parents=True)
    shutil.copy(FIXTURES / "goose" / "config-providers.yaml", home / ".config" / "goose" / "config.yaml")
    (home / "src" / "app").mkdir(parents=True)
    shutil.copy(FIXTURES / "aider" / ".aider.conf.yml", home / "src" / "app" / ".aider.conf.yml")
    (home / "src" / "app" / ".git").mkdir()
    found = configs(lib, tmp_path)
    assert found["/home/alice/.config/goose/config.yaml"].providers == ["anthropic"]
    assert found["/home/alice/src/app/.aider.conf.yml"].providers == ["gemini", "openrouter"]


def test_configs_are_found_in_every_place_a_template_names(lib, tmp_path: Path) -> None:
    planted = ["bob/.cursor/mcp.json", "bob/.codex/config.toml", "bob/.config/Code/User/mcp.json",
               "bob/work/api/.mcp.json", "dave/AppData/Roaming/Claude/claude_desktop_config.json"]
    for rel in planted:
        path = tmp_path / "home" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('[mcp_servers.x]\ncommand = "uvx"\n' if rel.endswith(".toml") else
                        '{"mcpServers": {"x": {"command": "uvx"}}}')
    (tmp_path / "home" / "bob" / "work" / "api" / ".git").mkdir()
    (tmp_path / "home" / "bob" / ".config" / "Other").mkdir()  # a sibling folder no template names
    assert set(configs(lib, tmp_path)) == {f"/home/{rel}" for rel in planted}


def test_a_folder_reached_through_a_link_is_found_once(lib, tmp_path: Path) -> None:
    home = tmp_path / "home" / "carol"
    (home / "real" / ".cursor").mkdir(parents=True)
    (home / "real" / ".cursor" / "mcp.json").write_text('{"mcpServers": {"x": {"command": "uvx"}}}')
    (home / ".cursor").symlink_to(home / "real" / ".cursor")
    found = configs(lib, tmp_path)
    assert "/home/carol/.cursor/mcp.json" in found


@pytest.mark.parametrize("layout", ["plain", "linked folder", "relative link", "dangling", "dot-dot"])
def test_resolved_paths_are_those_of_realpath(lib, tmp_path: Path, layout: str) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "rel").symlink_to("b")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    path = {"plain": tmp_path / "a" / "b" / "f", "linked folder": tmp_path / "link" / "b" / "f",
            "relative link": tmp_path / "a" / "rel" / "f", "dangling": tmp_path / "gone" / "f",
            "dot-dot": tmp_path / "a" / "b" / ".." / "rel" / "f"}[layout]
    scan = FileScan(lib, "/")
    assert scan._real(str(path)) == os.path.realpath(path)
    assert scan._real(str(path)) == os.path.realpath(path)  # the second time, from what the scan remembers


def test_homes_named_only_by_a_running_agent_are_found_apart_from_the_machines(tmp_path: Path) -> None:
    root = tmp_path / "image"
    (root / "home" / "alice").mkdir(parents=True)
    (root / "root").mkdir()
    service = tmp_path / "srv" / "bot"
    (service / "AppData").mkdir(parents=True)
    link = tmp_path / "to-alice"
    link.symlink_to(root / "home" / "alice")
    every = find_homes(str(root), [str(service), str(link)])
    assert [h.path for h in every] == [str(root / "home" / "alice"), str(root / "root"), str(service)]
    extra = find_homes(str(root), [str(service), str(link), str(tmp_path / "missing")], only_extra=True)
    assert [(h.path, h.platforms) for h in extra] == [(str(service), frozenset({"windows"})),
                                                      (str(root / "home" / "alice"), frozenset({"linux", "macos", "windows"}))]


def test_servers_a_projects_own_files_declare_carry_the_project_whatever_the_client(lib, tmp_path: Path) -> None:
    project = tmp_path / "home" / "erin" / "src" / "shop"
    (project / ".git").mkdir(parents=True)
    files = {".cursor/mcp.json": '{"mcpServers": {"db": {"command": "uvx", "args": ["mcp-server-postgres"]}}}',
             ".vscode/mcp.json": '{"servers": {"web": {"type": "http", "url": "https://mcp.example.com/mcp"}}}',
             ".roo/mcp.json": '{"mcpServers": {"git": {"command": "uvx", "args": ["mcp-server-git"]}}}'}
    for rel, text in files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    user_file = tmp_path / "home" / "erin" / ".cursor" / "mcp.json"
    user_file.parent.mkdir(parents=True)
    user_file.write_text('{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}')
    found = configs(lib, tmp_path)
    for rel in files:
        record = found[f"/home/erin/src/shop/{rel}"]
        assert [s.project for s in record.mcp_servers] == ["/home/erin/src/shop"], rel
    assert [s.project for s in found["/home/erin/.cursor/mcp.json"].mcp_servers] == [None]
