"""End to end: a real n8n from the npm registry, holding workflows with an AI Agent node, found by the scan.

A session fixture installs n8n once into the cache the end-to-end tests share (``n8n_install.py`` says
how, and why the install overrides one dependency and builds one from source); the suite starts that
install in the background as soon as it has collected this test and runs the test last
(tests/conftest.py), so that the minutes of a first install overlap the rest of the suite.

The test runs n8n as it is deployed: as an unprivileged user (``nobody``), with ``N8N_USER_FOLDER`` in a
fresh home, inside a network namespace whose only interface is ``lo``, telemetry, version checks and
templates off. ``n8n import:workflow --separate`` loads four workflows (an AI Agent on an OpenAI chat
model with a credential reference of a fake name and no value, an agent on Anthropic that stays a draft,
an archived agent, one with no AI node), ``n8n publish:workflow`` activates the first, and ``n8n start``
serves them. ``agentroster scan --json`` and a real daemon must find n8n as a platform process named
after its folder, with the two live agent workflows, their providers and credential kinds, and never the
encryption key n8n wrote into its config. That n8n is one sighting: its version (2.8.4, from the installed
package.json), its ``~/.n8n/config`` (which the file sensor finds) and the task runner n8n 2 starts as its
child are all in it, and no other sighting names the test's folders.

The cache may sit where ``nobody`` cannot walk (a clone under /root): n8n runs from a bind mount of it in a
mount namespace of its own, so nothing outside that namespace changes.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import n8n_install as n8n_install_module
import pytest
from install_cache import FOLDER as CACHE_FOLDER
from support import e2e_agents, run_agentroster, sighting_with_pid
from test_enterprise_agents import _start_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(1200)]  # the first run installs n8n

NODE = shutil.which("node")
NETNS_PREFIX = "ar-n8n-"
PORT = 5678
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
# a bind mount of the install in a mount namespace of its own (argv: the install, the mount point, the command)
BIND_AND_RUN = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
N8N_ENV = {
    "N8N_DIAGNOSTICS_ENABLED": "false", "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
    "N8N_TEMPLATES_ENABLED": "false", "N8N_PERSONALIZATION_ENABLED": "false", "N8N_HIRING_BANNER_ENABLED": "false",
    "N8N_COMMUNITY_PACKAGES_ENABLED": "false", "N8N_LICENSE_AUTO_RENEW_ENABLED": "false",
    "N8N_LISTEN_ADDRESS": "127.0.0.1", "N8N_PORT": str(PORT), "SCARF_ANALYTICS": "false", "LANG": "C.UTF-8",
}
AGENT = "@n8n/n8n-nodes-langchain.agent"


def _node(name: str, kind: str, version: float, parameters: dict[str, Any] | None = None,
          credentials: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": f"node-{name.lower().replace(' ', '-')}", "name": name, "type": kind,
                            "typeVersion": version, "position": [0, 0], "parameters": parameters or {}}
    if credentials:
        node["credentials"] = credentials
    return node


def _agent_workflow(id_: str, name: str, model: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A chat trigger feeding an AI Agent, ``model`` wired in as its chat model (as n8n's editor saves it)."""
    return {"id": id_, "name": name, "active": False, "settings": {"executionOrder": "v1"}, **extra,
            "nodes": [_node("When chat message received", "@n8n/n8n-nodes-langchain.chatTrigger", 1.1,
                            {"options": {}}),
                      _node("AI Agent", AGENT, 1.7, {"options": {}}), model],
            "connections": {"When chat message received": {"main": [[{"node": "AI Agent", "type": "main",
                                                                       "index": 0}]]},
                            model["name"]: {"ai_languageModel": [[{"node": "AI Agent", "type": "ai_languageModel",
                                                                   "index": 0}]]}}}


OPENAI_MODEL = _node("OpenAI Chat Model", "@n8n/n8n-nodes-langchain.lmChatOpenAi", 1.2,
                     {"model": {"__rl": True, "mode": "list", "value": "gpt-4o-mini"}, "options": {}},
                     # a reference to a credential by kind, id and name: n8n keeps values elsewhere; none exists
                     {"openAiApi": {"id": "FAKEcredential01", "name": "FAKE OpenAI account"}})
ANTHROPIC_MODEL = _node("Anthropic Chat Model", "@n8n/n8n-nodes-langchain.lmChatAnthropic", 1.3,
                        {"options": {}}, {"anthropicApi": {"id": "FAKEcredential02", "name": "FAKE Anthropic"}})
WORKFLOWS = {
    "invoice.json": _agent_workflow("arInvoiceTriage1", "Invoice triage agent", OPENAI_MODEL),
    "draft.json": _agent_workflow("arDraftReplies01", "Draft replies", ANTHROPIC_MODEL),
    "archived.json": _agent_workflow("arOldAgent000001", "Old support agent", OPENAI_MODEL, isArchived=True),
    "nightly.json": {"id": "arNightlyExport1", "name": "Nightly export", "active": False, "connections": {},
                     "settings": {"executionOrder": "v1"},
                     "nodes": [_node("Schedule", "n8n-nodes-base.scheduleTrigger", 1.2, {"rule": {"interval": [{}]}}),
                               _node("Fetch", "n8n-nodes-base.httpRequest", 4.2, {"url": "http://127.0.0.1:9/x"})]},
}


@pytest.fixture(scope="session")
def n8n_install(request: pytest.FixtureRequest) -> Path:
    """A folder whose node_modules holds n8n, installed from the npm registry once and cached (started in
    the background when the suite collected this test: tests/conftest.py)."""
    reason = n8n_install_module.missing()
    if reason:
        pytest.skip(reason)
    cache = Path(request.config.cache.mkdir(CACHE_FOLDER))
    background = request.config.stash.get(n8n_install_module.BACKGROUND_INSTALL, None)
    if background is not None:
        background.wait(timeout=1500)
    if not n8n_install_module.installed(cache):
        reason = n8n_install_module.missing_to_build()
        if reason:
            pytest.skip(reason)
    try:
        target = n8n_install_module.install(cache)
    except n8n_install_module.InstallFailed as failed:
        pytest.fail(str(failed))
    print(f"\nn8n: {(target / '.installed').read_text().strip()} (0 s this run if cached)")
    return target


class N8nHost:
    """A lo-only network namespace and a fresh home of ``nobody`` in which n8n commands run from the cache."""

    def __init__(self, install: Path) -> None:
        helpers = e2e_agents()
        helpers.sweep_stale_namespaces(NETNS_PREFIX)
        self.install = install
        self.base = Path(tempfile.mkdtemp(prefix="ar-n8n-", dir="/tmp"))  # pytest's tmp dirs are root-only
        self.base.chmod(0o755)
        self.mount = self.base / "n8n"
        self.home = self.base / "home"
        self.flows = self.base / "flows"
        self.tmp = self.base / "tmp"  # n8n's temporary folders (its data table uploads): removed with the rest
        for folder in (self.mount, self.home, self.flows, self.tmp):
            folder.mkdir()
        nobody = pwd.getpwnam("nobody")
        for folder in (self.home, self.tmp):
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        self.log = self.base / "n8n.log"
        self.netns = helpers.OfflineNetns(f"{NETNS_PREFIX}{os.getpid()}")
        self.netns.create()
        self.server: subprocess.Popen[bytes] | None = None

    def argv(self, *args: str) -> list[str]:
        return [*self.netns.prefix, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", BIND_AND_RUN,
                "sh", str(self.install), str(self.mount), *AS_NOBODY, NODE or "node",
                str(self.mount / "node_modules" / "n8n" / "bin" / "n8n"), *args]

    def env(self) -> dict[str, str]:
        return {**N8N_ENV, "PATH": f"{Path(NODE or 'node').parent}:/usr/bin:/bin", "HOME": str(self.home),
                "N8N_USER_FOLDER": str(self.home), "TMPDIR": str(self.tmp)}

    def run(self, *args: str) -> str:
        done = subprocess.run(self.argv(*args), env=self.env(), cwd=self.base, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"n8n {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}"
        return done.stdout + done.stderr

    def start(self) -> int:
        with self.log.open("wb") as out:
            self.server = subprocess.Popen(self.argv("start"), env=self.env(), cwd=self.base, stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self.server.pid

    def listening(self, pid: int) -> bool:
        """Whether n8n listens on 127.0.0.1:PORT: its own namespace's TCP table (/proc/PID/net/tcp)."""
        try:
            table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        except OSError:
            return False
        return any(f[1] == f"0100007F:{PORT:04X}" and f[3] == "0A" for f in (line.split() for line in table))

    def close(self) -> None:
        self.netns.delete()  # kills n8n, its task runner and anything else left in the namespace
        if self.server is not None:
            self.server.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def n8n_host(n8n_install: Path) -> Iterator[N8nHost]:
    if os.geteuid() != 0:
        pytest.skip("needs root: a network namespace, a bind mount and running n8n as nobody")
    for tool, package in (("ip", "iproute2"), ("setpriv", "util-linux"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian's {package})")
    host = N8nHost(n8n_install)
    try:
        yield host
    finally:
        host.close()


def test_a_real_n8n_is_found_with_its_ai_agent_workflows(n8n_host: N8nHost, tmp_path: Path, spawn: Any) -> None:
    host = n8n_host
    for name, workflow in WORKFLOWS.items():
        (host.flows / name).write_text(json.dumps(workflow))
    started = time.monotonic()
    out = host.run("import:workflow", "--separate", f"--input={host.flows}")
    assert "Successfully imported 4 workflows" in out, out[-2000:]
    host.run("publish:workflow", "--id=arInvoiceTriage1")
    pid = host.start()
    deadline = time.monotonic() + 240
    while not host.listening(pid):
        assert host.server is not None and host.server.poll() is None, host.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"n8n did not listen in 240 s:\n{host.log.read_text()[-3000:]}"
        time.sleep(0.5)
    print(f"\nn8n: imported, published and listening in {time.monotonic() - started:.1f} s")

    folder = host.home / ".n8n"
    key = json.loads((folder / "config").read_text())["encryptionKey"]  # n8n's own secret: never reported
    done = run_agentroster("scan", "--json", "--home", str(host.home), timeout=300)
    assert done.returncode == 0, done.stderr
    assert key not in done.stdout
    scan = json.loads(done.stdout)
    found = sighting_with_pid(scan, pid)
    assert (found["signature"], found["type"], found["name"]) == ("n8n", "enterprise", f"n8n in {folder}")
    assert found["user"] == "nobody" and found["running"] is True
    project = found["project"]
    assert (project["framework"], project["root"]) == ("n8n", str(folder))
    assert sorted(project["workflows"], key=lambda w: w["name"]) == [
        {"name": "Draft replies", "active": False, "agent_nodes": 1, "providers": ["anthropic"],
         "credentials": ["anthropicApi"]},
        {"name": "Invoice triage agent", "active": True, "agent_nodes": 1, "providers": ["openai"],
         "credentials": ["openAiApi"]},
    ], "the archived agent and the workflow with no AI node are not listed"
    assert sorted(project["providers"]) == ["anthropic", "openai"]
    assert "workflow 'Invoice triage agent' (active): 1 AI agent node; providers openai; credentials openAiApi" \
        in [e["detail"] for e in found["evidence"]]
    assert not [e for e in scan["errors"] if str(host.base) in e["where"]], scan["errors"]
    # One n8n, one sighting: its ~/.n8n/config (the file sensor's) joins the running n8n of that folder, and
    # the task runner n8n 2 starts as its child (running n8n's own code) is part of it, not an agent of its own.
    ours = [s for s in scan["sightings"] if str(host.base) in json.dumps(s)]
    assert [s["id"] for s in ours] == [found["id"]], _summary(ours)
    assert str(folder / "config") in [c["path"] for c in found["configs"]], found["configs"]
    assert project["version"] == "2.8.4", project
    assert "n8n 2.8.4 in its node_modules" in [e["detail"] for e in found["evidence"]], found["evidence"]
    runners = [p for p in found["processes"] if p["pid"] != pid]
    assert runners and all(any("task-runner" in a for a in p["cmdline"]) for p in runners), found["processes"]

    # The daemon's process tracker finds the same n8n: its own state (what it reports) holds the sighting.
    held = _start_daemon(tmp_path / "daemon", spawn)
    deadline = time.monotonic() + 90
    while found["name"] not in held():
        assert time.monotonic() < deadline, f"the daemon did not hold n8n: {sorted(held())}"
        time.sleep(0.2)
    doc = held()[found["name"]]
    assert doc["type"] == "enterprise" and pid in [p["pid"] for p in doc["processes"]]
    assert sorted(w["name"] for w in doc["project"]["workflows"]) == ["Draft replies", "Invoice triage agent"]
    assert key not in json.dumps(doc)
    assert doc["project"]["version"] == "2.8.4"
    assert {p["pid"] for p in doc["processes"]} >= {p["pid"] for p in found["processes"]}, doc["processes"]
    assert [name for name, held_doc in held().items() if str(host.base) in json.dumps(held_doc)] == [found["name"]]


def _summary(sightings: list[dict[str, Any]]) -> str:
    """Each sighting's name, signature, type and processes: what an assertion shows when there are too many."""
    return "\n".join(f"{s['name']!r} {s['signature']} {s['type']} running={s['running']} "
                     f"pids={[(p['pid'], p['cmdline'][:3]) for p in s['processes']]} "
                     f"configs={[c['path'] for c in s['configs']]}" for s in sightings)
