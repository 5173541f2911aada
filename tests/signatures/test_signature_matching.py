"""Matching processes, MCP commands, URLs, hosts, artifacts, autonomy markers and credentials."""

from __future__ import annotations

import pytest

from signatures.anchors import anchor_words
from signatures.launchers import ProcessFacts, name_candidates
from signatures.matching import Library


def facts(*argv: str, exe: str | None = None, name: str | None = None, platform: str = "linux") -> ProcessFacts:
    exe = argv[0] if exe is None else exe
    if name is None:
        name = exe.replace("\\", "/").rsplit("/", 1)[-1]
        name = name[:15] if platform == "linux" else name
    return ProcessFacts(name=name, exe=exe, cmdline=list(argv), env_keys=frozenset(), platform=platform)


def ids(lib: Library, proc: ProcessFacts, script: str | None = None) -> list[str]:
    return [m.signature.id for m in lib.match_process(proc, lambda _path: script)]


# -- processes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "expected"), [
    (("node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"), "claude-code"),
    (("/usr/bin/node", "--max-old-space-size=4096", "/usr/lib/node_modules/@openai/codex/bin/codex.js"), "codex"),
    (("node", "-r", "/opt/trace.js", "/usr/lib/node_modules/@google/gemini-cli/dist/index.js"), "gemini-cli"),
    (("python3", "-m", "aider", "--model", "sonnet"), "aider"),
    (("python3.12", "-u", "-m", "vllm.entrypoints.openai.api_server"), "vllm"),
    (("/usr/bin/python3", "-X", "utf8", "/home/a/.local/bin/aider"), "aider"),
    (("bun", "run", "/home/a/.bun/install/global/node_modules/@sourcegraph/amp/dist/main.js"), "amp"),
])
def test_interpreters_are_seen_through(lib: Library, argv: tuple[str, ...], expected: str) -> None:
    assert ids(lib, facts(*argv))[0] == expected


@pytest.mark.parametrize(("argv", "expected"), [
    (("npx", "-y", "@modelcontextprotocol/server-filesystem", "/home/a"), "mcp-filesystem"),
    (("npx", "--yes", "--package", "@playwright/mcp", "mcp-server-playwright"), "mcp-playwright"),
    (("bunx", "@upstash/context7-mcp@1.0.14"), "mcp-context7"),
    (("pnpm", "dlx", "@wonderwhy-er/desktop-commander"), "mcp-desktop-commander"),
    (("uvx", "--from", "mcp-server-git==2025.1.1", "mcp-server-git", "--repository", "."), "mcp-git"),
    (("uv", "tool", "run", "mcp-server-fetch"), "mcp-fetch"),
    (("uv", "--directory", "/srv/x", "run", "python", "-m", "mcp_server_time"), "mcp-time"),
    (("pipx", "run", "mcp-server-sqlite", "--db-path", "/tmp/a.db"), "mcp-sqlite"),
    (("docker", "run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN",
      "ghcr.io/github/github-mcp-server:v0.9"), "mcp-github"),
    (("docker", "container", "run", "--rm", "-i", "mcp/fetch@sha256:0123abcd"), "mcp-fetch"),
    (("node", "/usr/lib/node_modules/npm/bin/npx-cli.js", "-y", "@modelcontextprotocol/server-memory"), "mcp-memory"),
    (("npm", "exec", "@modelcontextprotocol/server-sequential-thinking"), "mcp-sequential-thinking"),
    (("sh", "-c", "npx -y @notionhq/notion-mcp-server"), "mcp-notion"),
])
def test_launchers_name_the_package_or_image(lib: Library, argv: tuple[str, ...], expected: str) -> None:
    assert ids(lib, facts(*argv))[0] == expected


def test_windows_paths_and_cmd_wrappers(lib: Library) -> None:
    proc = facts("C:\\Users\\bob\\AppData\\Roaming\\npm\\npx.cmd", "-y", "@modelcontextprotocol/server-github",
                 platform="windows")
    assert ids(lib, proc)[0] == "mcp-github"
    wrapped = facts("C:\\Windows\\System32\\cmd.exe", "/c", "npx", "-y", "@upstash/context7-mcp", platform="windows")
    assert ids(lib, wrapped)[0] == "mcp-context7"
    native = facts("C:\\Users\\bob\\.local\\bin\\claude.exe", platform="windows")
    assert ids(lib, native) == ["claude-code"]


def test_a_truncated_linux_name_matches_as_a_prefix(lib: Library) -> None:
    proc = ProcessFacts(name="copilot-languag", exe="", cmdline=[], platform="linux")
    assert ids(lib, proc) == ["github-copilot"]
    found = lib.match_process(proc)[0]
    assert found.rule == "process.names" and "truncated" in found.detail


def test_a_15_char_name_is_not_a_prefix_off_linux(lib: Library) -> None:
    assert ids(lib, ProcessFacts(name="copilot-languag", exe="", cmdline=[], platform="macos")) == []


def test_a_process_title_is_split_back_into_arguments(lib: Library) -> None:
    titled = ProcessFacts(name="npm exec @mode", exe="/usr/bin/node",
                          cmdline=["npm exec @modelcontextprotocol/server-filesystem /tmp"], platform="linux")
    assert ids(lib, titled)[0] == "mcp-filesystem"


def test_claude_desktop_is_not_claude_code(lib: Library) -> None:
    app = facts("/Applications/Claude.app/Contents/MacOS/Claude", platform="macos")
    assert ids(lib, app) == ["claude-desktop"]
    cli = facts("claude", exe="/Users/a/.local/share/claude/versions/2.0.14", name="claude", platform="macos")
    assert ids(lib, cli) == ["claude-code"]


def test_specific_tool_server_outranks_the_generic_one(lib: Library) -> None:
    found = lib.match_process(facts("npx", "-y", "@upstash/context7-mcp"))
    assert [m.signature.id for m in found] == ["mcp-context7", "mcp-server"]


def test_python_script_imports_are_read_only_for_python(lib: Library) -> None:
    script = "import os\nfrom crewai import Agent, Crew\n"
    assert ids(lib, facts("python3", "/srv/crew.py"), script) == ["crewai"]
    assert ids(lib, facts("node", "/srv/crew.js"), script) == []
    found = lib.match_process(facts("python3", "/srv/crew.py"), lambda _: script)[0]
    assert found.rule == "process.script_imports" and found.detail == "script imports 'crewai'"


def test_script_reader_failures_are_no_match(lib: Library) -> None:
    def broken(_: str) -> str | None:
        raise OSError("gone")

    assert lib.match_process(facts("python3", "/srv/crew.py"), broken) == []
    assert lib.match_process(facts("python3", "/srv/crew.py"), None) == []


def test_imports_match_by_module_prefix(lib: Library) -> None:
    script = "from llama_index.core.agent.workflow import FunctionAgent\n"
    assert ids(lib, facts("python", "rag.py"), script) == ["llamaindex"]
    assert ids(lib, facts("python", "x.py"), "import langchainx\n") == []


def test_platform_filters_signatures(lib: Library) -> None:
    macos_only = facts("/Applications/Cursor.app/Contents/MacOS/Cursor", platform="macos")
    assert ids(lib, macos_only) == ["cursor"]


def test_details_never_carry_environment(lib: Library) -> None:
    proc = ProcessFacts(name="claude", exe="/usr/bin/node", cmdline=["claude"],
                        env_keys=frozenset({"ANTHROPIC_API_KEY", "CLAUDECODE"}), platform="linux")
    (found,) = lib.match_process(proc)
    assert found.detail == "argv[0] 'claude'" and "ANTHROPIC" not in found.detail


def test_child_env_alone_does_not_identify_a_process(lib: Library) -> None:
    shell = ProcessFacts(name="bash", exe="/usr/bin/bash", cmdline=["bash", "-c", "ls"],
                         env_keys=frozenset({"CLAUDECODE"}), platform="linux")
    assert lib.match_process(shell) == []


def test_typical_processes_match_nothing(lib: Library) -> None:
    from process_mix import typical_processes

    assert [p.exe for p in typical_processes(400) if lib.match_process(p)] == []


def test_name_candidates_cover_exe_argv0_name_and_targets() -> None:
    cands, script = name_candidates(facts("/usr/bin/python3", "/opt/billing/dist/server.py", name="python3"))
    assert ("python3", "exe", False) in cands and ("server", "script", False) in cands
    assert ("billing", "package", False) in cands
    assert script == "/opt/billing/dist/server.py"


def test_anchor_words() -> None:
    assert anchor_words(r"[\\/]@anthropic-ai[\\/]claude-code[\\/]") == {"anthropic"}
    assert anchor_words(r"(?:^|[\\/])q(?:\.exe)? chat\b") == {"chat"}
    assert anchor_words(r"claude") is None
    assert anchor_words(r"foo|[\\/]barbaz[\\/]") is None


# -- MCP commands and URLs -------------------------------------------------------------------------


def test_match_command_prefers_a_known_server(lib: Library) -> None:
    found = lib.match_command("uvx", ["mcp-server-git", "--repository", "/src"])
    assert found is not None and found.signature.id == "mcp-git"


def test_match_command_falls_back_to_the_generic_server(lib: Library) -> None:
    found = lib.match_command("python3", ["/home/a/tools/billing.py"])
    assert found is not None and (found.signature.id, found.rule) == ("mcp-server", "mcp.declared")
    agent = lib.match_command("npx", ["-y", "@anthropic-ai/claude-code", "mcp", "serve"])
    assert agent is not None and agent.signature.id == "mcp-server"


def test_match_url(lib: Library) -> None:
    known = lib.match_url("https://MCP.Notion.com/mcp")
    assert known is not None and (known.signature.id, known.rule) == ("mcp-notion", "network.hosts")
    unknown = lib.match_url("https://tools.example.net/mcp")
    assert unknown is not None and unknown.signature.id == "mcp-server"
    assert lib.match_url("::not a url::") is not None


def test_match_host_names_an_agent_backend(lib: Library) -> None:
    found = lib.match_host("api2.cursor.sh")
    assert found is not None and found.id == "cursor"
    assert lib.match_host("example.com") is None


# -- providers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "provider"), [
    ("api.openai.com", "openai"),
    ("API.OPENAI.COM.", "openai"),
    ("api.anthropic.com:443", "anthropic"),
    ("contoso-east.openai.azure.com", "azure-openai"),
    ("bedrock-runtime.eu-west-1.amazonaws.com", "aws-bedrock"),
    ("us-central1-aiplatform.googleapis.com", "google-vertex"),
    ("generativelanguage.googleapis.com", "google-gemini"),
    ("abc.us-east-1.aws.endpoints.huggingface.cloud", "huggingface"),
    ("api.individual.githubcopilot.com", "github-copilot"),
    ("openrouter.ai", "openrouter"),
])
def test_provider_for_host(lib: Library, host: str, provider: str) -> None:
    found = lib.provider_for_host(host)
    assert found is not None and found.id == provider


@pytest.mark.parametrize("host", ["openai.azure.com.evil.net", "bedrock-runtime.amazonaws.com", "example.com",
                                  "aiplatform.googleapis.com.evil.net", ""])
def test_provider_wildcards_do_not_overreach(lib: Library, host: str) -> None:
    assert lib.provider_for_host(host) is None


def test_provider_for_port(lib: Library) -> None:
    ports = {port: lib.provider_for_port(port) for port in (11434, 1234, 8000, 4891, 5001, 1337, 22)}
    assert {p: (v.id if v else None) for p, v in ports.items()} == {
        11434: "ollama", 1234: "lm-studio", 8000: "vllm", 4891: "gpt4all", 5001: "koboldcpp", 1337: "jan",
        22: None}


# -- artifacts -------------------------------------------------------------------------------------


def test_extensions_and_packages(lib: Library) -> None:
    assert getattr(lib.match_extension("ANTHROPIC.Claude-Code"), "id", None) == "claude-code"
    assert getattr(lib.match_package("pypi", "Aider_Chat"), "id", None) == "aider"
    assert getattr(lib.match_package("pypi", "llama.index"), "id", None) == "llamaindex"
    assert getattr(lib.match_package("npm", "@Google/Gemini-CLI"), "id", None) == "gemini-cli"
    assert lib.match_package("npm", "left-pad") is None


def test_templates_and_project_markers(lib: Library) -> None:
    paths = {f.path for _, f in lib.file_templates}
    assert {"{project}/.mcp.json", "~/.cursor/mcp.json", "/etc/claude-code/managed-settings.json",
            "%LOCALAPPDATA%/Packages/Claude_*/LocalCache/Roaming/Claude/claude_desktop_config.json",
            "~/.config/Code/User/profiles/*/mcp.json"} <= paths
    assert {".mcp.json", ".cursor", ".vscode", ".gemini", ".claude", "opencode.json", ".aider.conf.yml",
            ".continue"} <= lib.project_markers
    assert ("claude-desktop", "/Applications/Claude.app") in {(s.id, a) for s, a in lib.app_templates}


# -- autonomy --------------------------------------------------------------------------------------


def test_autonomy_flags_forms(lib: Library) -> None:
    claude, codex = lib.by_id["claude-code"], lib.by_id["codex"]
    assert lib.autonomy_flags(claude, ["claude", "--dangerously-skip-permissions"]) == [
        "--dangerously-skip-permissions"]
    assert lib.autonomy_flags(claude, ["claude", "--permission-mode", "bypassPermissions"]) == [
        "--permission-mode bypassPermissions"]
    assert lib.autonomy_flags(claude, ["claude", "--permission-mode=bypassPermissions"]) == [
        "--permission-mode bypassPermissions"]
    assert lib.autonomy_flags(claude, ["claude", "--permission-mode", "plan"]) == []
    assert lib.autonomy_flags(codex, ["codex", "--yolo", "-a", "never"]) == ["--yolo", "-a never"]
    assert lib.autonomy_flags(lib.by_id["gemini-cli"], ["gemini", "--approval-mode=yolo"]) == [
        "--approval-mode yolo"]
    assert lib.autonomy_flags(lib.by_id["amp"], ["amp", "--dangerously-allow-all"]) == ["--dangerously-allow-all"]
    assert lib.autonomy_flags(lib.by_id["copilot-cli"], ["copilot", "--allow-all-tools"]) == ["--allow-all-tools"]
    assert lib.autonomy_flags(lib.by_id["aider"], ["aider", "--yes-always"]) == ["--yes-always"]
    assert lib.autonomy_flags(lib.by_id["mcp-time"], ["x", "--yolo"]) == []


def test_autonomy_flags_stop_at_double_dash(lib: Library) -> None:
    argv = ["claude", "mcp", "add", "x", "--", "tool", "--dangerously-skip-permissions"]
    assert lib.autonomy_flags(lib.by_id["claude-code"], argv) == []


def test_autonomy_settings(lib: Library) -> None:
    claude, vscode, codex = lib.by_id["claude-code"], lib.by_id["vscode"], lib.by_id["codex"]
    doc = {"permissions": {"defaultMode": "bypassPermissions", "allow": []}}
    assert lib.autonomy_settings(claude, "claude_settings", doc) == ["permissions.defaultMode=bypassPermissions"]
    assert lib.autonomy_settings(claude, "mcp_json", doc) == []  # the marker names its dialects
    assert lib.autonomy_settings(vscode, "vscode_settings", {"chat.tools.autoApprove": True}) == [
        "chat.tools.autoApprove=true"]
    assert lib.autonomy_settings(vscode, "vscode_settings", {"chat": {"tools": {"autoApprove": True}}}) == [
        "chat.tools.autoApprove=true"]
    assert lib.autonomy_settings(vscode, "vscode_settings", {"chat.tools.autoApprove": 1}) == []
    profiles = {"profiles": {"fast": {"approval_policy": "never"}, "safe": {"approval_policy": "untrusted"}}}
    assert lib.autonomy_settings(codex, "codex_toml", profiles) == ["profiles.fast.approval_policy=never"]
    assert lib.autonomy_settings(lib.by_id["goose"], "goose_yaml", {"GOOSE_MODE": "auto"}) == ["GOOSE_MODE=auto"]
    assert lib.autonomy_settings(lib.by_id["aider"], "aider_yaml", {"yes-always": True}) == ["yes-always=true"]


@pytest.mark.parametrize("document", [None, [], "text", 3, [{"permissions": None}], {"permissions": "x"},
                                      {"permissions": ["defaultMode"]}, {1: 2}, {"permissions": {"defaultMode": {}}}])
def test_autonomy_settings_never_raise_on_odd_shapes(lib: Library, document: object) -> None:
    assert lib.autonomy_settings(lib.by_id["claude-code"], "claude_settings", document) == []


# -- credentials -----------------------------------------------------------------------------------

ANTHROPIC = "sk-ant-api03-FAKE" + "a1B2c3D4e5" * 9 + "AA"


def test_credential_by_shape_then_by_name(lib: Library) -> None:
    assert getattr(lib.credential_kind(None, ANTHROPIC), "id", None) == "anthropic"
    assert getattr(lib.credential_kind("OPENAI_API_KEY", ANTHROPIC), "id", None) == "anthropic"  # shape wins
    assert getattr(lib.credential_kind("DEEPSEEK_API_KEY", "sk-fa4e0000000000000000000000bcd123"), "id",
                   None) == "deepseek"
    assert getattr(lib.credential_kind("openai-api-key", "sk-FAKE0fa4e00000000000bcd1234"), "id", None) == "openai"
    assert lib.credential_kind("UNRELATED_SETTING", "sk-FAKE0fa4e00000000000bcd1234") is None


@pytest.mark.parametrize("value", ["", "   ", "${OPENAI_API_KEY}", "$OPENAI_API_KEY", "<your key>", "xxx",
                                   "sk-xxxxxxxxxxxxxxxxxxxxxxxx", "changeme", "your-api-key-here", "short",
                                   "has whitespace inside it", "{{ secrets.OPENAI }}", "%OPENAI_API_KEY%",
                                   "https://api.openai.com/v1", "123456789012345", "********************",
                                   "sk-proj-REDACTED00000000000000000", "aaaaaaaaaaaaaaaaaaaa"])
def test_placeholders_are_not_credentials(lib: Library, value: str) -> None:
    assert lib.credential_kind("OPENAI_API_KEY", value) is None


def test_credential_kind_ignores_non_strings(lib: Library) -> None:
    assert lib.credential_kind("OPENAI_API_KEY", 12345) is None  # type: ignore[arg-type]


def test_a_lone_argument_with_spaces_is_split_only_when_it_is_a_title(lib: Library) -> None:
    app = "/Applications/LM Studio.app/Contents/MacOS/LM Studio"
    assert ids(lib, ProcessFacts("LM Studio", app, [app], platform="macos")) == ["lm-studio"]
    cands, _ = name_candidates(ProcessFacts("LM Studio", app, [app], platform="macos"))
    assert [c for c in cands if c[1] == "argv[0]"] == []  # argv[0] is the exe, not "/Applications/LM"
