"""End to end: the live network sensor sees a real agent call its provider, and names the agent.

Each test makes a network namespace whose only interface is ``lo``, starts the local fake provider in
it, and runs ``agentroster scan --sniff SECONDS --json`` inside the same namespace (so its packet
capture and socket table are those of the namespace) while a real agent, installed from its registry,
calls the provider:

- aider (PyPI) with an Ollama model, against a fake Ollama on 127.0.0.1:11434: plain HTTP to a local
  runtime's port, so the sighting of aider must hold ``127.0.0.1:11434``, provider ``ollama``, via
  ``http``.
- Claude Code (npm) with its default base URL, ``https://api.anthropic.com``: a DNS responder on
  127.0.0.1:53 in the namespace (``/etc/netns/<ns>/resolv.conf``, which ``ip netns exec`` bind-mounts
  over ``/etc/resolv.conf``; ``/etc/hosts`` is not touched) answers with 127.0.0.1, where the fake
  provider serves HTTPS with a certificate from a test CA that Claude Code is told to trust. The
  sighting of Claude Code must hold ``api.anthropic.com:443``, provider ``anthropic``, via ``sni``, and
  the DNS query for that name.

No packet leaves the namespace; keys are fake; the namespace, its resolv.conf and the HOME are removed
afterwards, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import e2e_agents, sighting_with_pid

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
NETNS_PREFIX = "ar-e2enet-"
PROVIDER_DELAY_S = 120.0  # the provider holds each model call open this long: the agent stays mid-call
SNIFF_S = 45.0  # the scan's capture window: the agent starts and makes its call inside it


helpers = e2e_agents()


def _scan_command() -> list[str]:
    script = Path(sys.executable).with_name("agentroster")
    return [str(script)] if script.exists() else [sys.executable, "-m", "endpoint.cli"]


@pytest.fixture(scope="module")
def tools() -> Any:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to put the agent, its provider and the sensor in a network namespace")
    helpers.sweep_stale_namespaces(NETNS_PREFIX)
    return helpers.ensure_tools()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_test_ca(where: Path, host: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for ``host`` signed by it: (CA cert, server chain, server key)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=agentroster test CA", "-keyout", "ca.key",
             "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=where)
    _openssl("req", *ec, "-subj", f"/CN={host}", "-keyout", "server.key", "-out", "server.csr", cwd=where)
    (where / "server.ext").write_text(
        f"subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=where)
    return where / "ca.pem", where / "server.pem", where / "server.key"


class SniffedAgent:
    """A lo-only namespace holding the fake provider, ``agentroster scan --sniff`` and one agent."""

    def __init__(self, tools: Any) -> None:
        self.tools = tools
        self.netns = helpers.OfflineNetns(f"{NETNS_PREFIX}{os.getpid()}")
        self.tmp = Path(tempfile.mkdtemp(prefix="agentroster-e2e-net-"))
        self.home = self.tmp / "home" / "tester"
        self.project = self.home / "src" / "demo"
        self.project.mkdir(parents=True)
        (self.project / "README.md").write_text("# demo\n")
        self.keys = helpers.fake_keys()
        self.log = self.tmp / "provider.jsonl"
        self.resolv_dir = Path("/etc/netns") / self.netns.name
        self._made_etc_netns = False
        self._provider: subprocess.Popen[bytes] | None = None
        self._scan: subprocess.Popen[bytes] | None = None
        self.agent: Any = None
        self.netns.create()

    # -- parts

    def use_dns_responder(self) -> None:
        """Make 127.0.0.1 the namespace's resolver (the fake provider answers there)."""
        self._made_etc_netns = not self.resolv_dir.parent.exists()
        self.resolv_dir.mkdir(parents=True, exist_ok=True)
        (self.resolv_dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")

    def start_provider(self, *extra: str) -> None:
        port_file = self.tmp / "provider.port"
        argv = [*self.netns.prefix, sys.executable, str(helpers.FAKE_PROVIDER), "--port-file", str(port_file),
                "--delay", str(PROVIDER_DELAY_S), "--log", str(self.log), *extra]
        self._provider = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
        if not helpers.wait_for(port_file.exists, 15):
            raise RuntimeError("the fake provider did not start")

    def start_scan(self, seconds: float) -> None:
        """``agentroster scan --sniff`` in the namespace; returns once its packet socket is open."""
        argv = [*self.netns.prefix, *_scan_command(), "scan", "--json", "--sniff", str(seconds),
                "--home", str(self.home), "--no-walk"]
        self._scan = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        packet_table = Path(f"/proc/{self._scan.pid}/net/packet")  # the namespace's packet sockets

        def capturing() -> bool:
            with contextlib.suppress(OSError):
                return len(packet_table.read_text().splitlines()) > 1
            return False

        if not helpers.wait_for(capturing, 60):
            raise RuntimeError(f"the scan opened no packet socket: {self.finish_scan(kill=True)}")

    def start_agent(self, argv: list[str], env: dict[str, str]) -> None:
        self.agent = helpers.PtyProcess([*self.netns.prefix, *argv], env=env, cwd=self.project)

    def base_env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.tools.node_bin}:{helpers.SYSTEM_PATH}",
            "HOME": str(self.home),
            "USER": "tester",
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            **self.keys,
        }

    def provider_paths(self) -> list[str]:
        if not self.log.exists():
            return []
        return [json.loads(line)["path"] for line in self.log.read_text().splitlines() if line.strip()]

    def finish_scan(self, *, kill: bool = False) -> Any:
        """The scan's JSON document (waits for the window to end); on failure, what it printed."""
        assert self._scan is not None
        if kill:
            self._scan.kill()
        out, err = self._scan.communicate(timeout=SNIFF_S + 240)
        if self._scan.returncode != 0 or kill:
            return f"scan exited {self._scan.returncode}: {err[-2000:].decode(errors='replace')}"
        # Other processes on the machine are in the document too; their command lines are not ours to judge.
        return json.loads(out.decode("utf-8", errors="replace"))

    def close(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        if self._scan is not None and self._scan.poll() is None:
            self._scan.kill()
        if self._provider is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._provider.pid, signal.SIGKILL)
        for proc in (self._scan, self._provider):
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        self.netns.delete()  # also kills anything an agent left behind in the namespace
        shutil.rmtree(self.resolv_dir, ignore_errors=True)
        if self._made_etc_netns:
            with contextlib.suppress(OSError):
                self.resolv_dir.parent.rmdir()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def sniffed(tools: Any) -> Iterator[SniffedAgent]:
    running = SniffedAgent(tools)
    try:
        yield running
    finally:
        running.close()


def _endpoints(sighting: dict[str, Any]) -> set[tuple[str, int, str | None, str]]:
    return {(e["host"], e["port"], e["provider"], e["via"]) for e in sighting["endpoints"]}


def _no_key_in(text: str, keys: dict[str, str]) -> None:
    leaked = [name for name, value in keys.items() if value in text or value.split("FAKE", 1)[1][:24] in text]
    assert not leaked, f"fake key values in the scan output: {leaked}"


def test_aider_calling_a_local_ollama_is_seen_by_the_sensor(sniffed: SniffedAgent) -> None:
    sniffed.start_provider("--port", "11434")
    env = {**sniffed.base_env(), "OLLAMA_API_BASE": "http://127.0.0.1:11434", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    argv = [str(sniffed.tools.aider), "--model", "ollama_chat/llama3.2", "--no-check-update",
            "--no-show-release-notes", "--analytics-disable", "--no-git", "--no-gitignore",
            "--no-show-model-warnings", "--no-pretty", "--no-fancy-input", "--no-detect-urls"]
    sniffed.start_agent(argv, env)
    assert helpers.wait_for(lambda: "Aider v" in sniffed.agent.text(), 120), sniffed.agent.text()[-2000:]
    sniffed.start_scan(20)  # plain HTTP: every request head is visible, also on a kept-alive connection
    sniffed.agent.type("Say hello\r")
    assert helpers.wait_for(lambda: "/api/chat" in sniffed.provider_paths(), 60), sniffed.provider_paths()
    scan = sniffed.finish_scan()
    assert isinstance(scan, dict), scan

    aider = sighting_with_pid(scan, sniffed.agent.pid)
    assert "aider" in f"{aider['signature']} {aider['name']}".lower()
    assert ("127.0.0.1", 11434, "ollama", "http") in _endpoints(aider), aider["endpoints"]
    assert any(e["kind"] == "network" and "11434" in e["detail"] for e in aider["evidence"]), aider["evidence"]
    _no_key_in(json.dumps(scan), sniffed.keys)


def test_claude_code_calling_api_anthropic_com_over_tls_is_seen_by_the_sensor(sniffed: SniffedAgent) -> None:
    ca, chain, key = make_test_ca(sniffed.tmp, "api.anthropic.com")
    sniffed.use_dns_responder()
    sniffed.start_provider("--port", "443", "--tls-cert", str(chain), "--tls-key", str(key), "--dns", "127.0.0.1")
    key_value = sniffed.keys["ANTHROPIC_API_KEY"]
    (sniffed.home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "numStartups": 3,
        "customApiKeyResponses": {"approved": [key_value[-20:]], "rejected": []},
        "projects": {str(sniffed.project): {"hasTrustDialogAccepted": True, "allowedTools": [], "mcpServers": {}}},
    }))
    env = {
        **sniffed.base_env(),
        "NODE_EXTRA_CA_CERTS": str(ca),  # the test CA, on top of the bundled roots
        "SSL_CERT_FILE": str(ca),
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    # TLS: only a new connection shows its server name, so the capture runs before the agent starts.
    sniffed.start_scan(SNIFF_S)
    sniffed.start_agent([str(sniffed.tools.claude)], env)
    assert helpers.wait_for(lambda: "for shortcuts" in sniffed.agent.text() or ">" in sniffed.agent.text(), 60)
    sniffed.agent.type("Summarise README.md please\r")
    called = helpers.wait_for(lambda: any(p.startswith("/v1/messages") for p in sniffed.provider_paths()), 60)
    assert called, (sniffed.provider_paths(), sniffed.agent.text()[-2000:])
    scan = sniffed.finish_scan()
    assert isinstance(scan, dict), scan

    claude = sighting_with_pid(scan, sniffed.agent.pid)
    assert "claude" in f"{claude['signature']} {claude['name']}".lower()
    assert ("api.anthropic.com", 443, "anthropic", "sni") in _endpoints(claude), claude["endpoints"]
    # the resolver's socket closes within microseconds; the query still goes to the process that
    # then called the name, and no "unattributed" sighting is left for it
    assert ("api.anthropic.com", 0, "anthropic", "dns") in _endpoints(claude), claude["endpoints"]
    unattributed = [s["name"] for s in scan["sightings"] if s["name"].startswith("unattributed")]
    assert unattributed == [], unattributed
    _no_key_in(json.dumps(scan), sniffed.keys)
