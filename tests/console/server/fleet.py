"""A simulated fleet: devices whose sightings look like ``agentroster scan --json`` output, and the
reports (snapshots, deltas, heartbeats) a device's daemon sends about them.

Used by the collector's tests (through conftest) and by ``bench/ingest.py``. Every value is made
up: fingerprints are random hex, never derived from a credential.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CODING = (
    ("claude-code", "Claude Code", "Anthropic", "anthropic", "api.anthropic.com", "claude"),
    ("codex-cli", "Codex CLI", "OpenAI", "openai", "api.openai.com", "codex"),
    ("cursor", "Cursor", "Anysphere", "openai", "api2.cursor.sh", "Cursor"),
    ("aider", "Aider", "Aider", "anthropic", "api.anthropic.com", "aider"),
    ("gemini-cli", "Gemini CLI", "Google", "google", "generativelanguage.googleapis.com", "gemini"),
    ("cline", "Cline", "Cline", "openrouter", "openrouter.ai", "code"),
)  # fmt: skip
MCP = (
    ("filesystem", "npx", ["-y", "@modelcontextprotocol/server-filesystem", "/home/{user}/src"], "broad_tools"),
    ("git", "uvx", ["mcp-server-git"], None),
    ("github", "npx", ["-y", "@modelcontextprotocol/server-github"], None),
    ("postgres", "npx", ["-y", "@modelcontextprotocol/server-postgres", "postgresql://db/app"], "broad_tools"),
    ("playwright", "npx", ["@playwright/mcp@latest"], "broad_tools"),
    ("slack", "npx", ["-y", "@modelcontextprotocol/server-slack"], None),
    ("fetch", "uvx", ["mcp-server-fetch"], None),
)  # fmt: skip
RUNTIMES = (("ollama", "Ollama", "Ollama", 11434), ("lm-studio", "LM Studio", "Element Labs", 1234))
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def stable_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def fingerprint(rng: random.Random) -> str:
    return "hmac-sha256:" + "".join(rng.choice("0123456789abcdef") for _ in range(32))


def reason(answer: Any) -> str:
    """The reason every 4xx of the collector carries: {"detail": {"reason": ...}}."""
    body = answer.json()
    assert isinstance(body.get("detail"), dict), body
    return str(body["detail"]["reason"])


def sighting(*, id: str | None = None, name: str = "Claude Code", signature: str | None = "claude-code", type: str = "coding",
             user: str | None = "alice", parent: str | None = None, running: bool = True,
             providers: tuple[str, ...] = (), fingerprints: tuple[str, ...] = (), flags: tuple[str, ...] = (),
             vendor: str = "Anthropic", confidence: float = 0.9, pid: int = 4242, seen: str | None = None,
             **extra: Any) -> dict[str, Any]:
    """One sighting in the contract's shape; keyword arguments shape what the tests care about."""
    seen = seen or now_iso()
    doc: dict[str, Any] = {
        "id": id or uuid.uuid4().hex[:20], "signature": signature, "name": name, "vendor": vendor, "type": type, "user": user,
        "running": running, "confidence": confidence, "parent": parent,
        "processes": [{"pid": pid, "ppid": 1, "name": "node", "exe": "/usr/bin/node",
                       "cmdline": ["node", "/usr/lib/node_modules/.bin/claude"], "user": user or "root",
                       "started": 1_700_000_000.0}] if running else [],
        "configs": [{"path": f"/home/{user}/.claude.json", "client": signature or "unknown", "format": "json",
                     "scope": "user"}],
        "mcp_servers": [],
        "endpoints": [{"host": f"api.{p}.com", "port": 443, "provider": p, "via": "sni", "first_seen": 1.7e9,
                       "last_seen": 1.7e9, "count": 3} for p in providers],
        "credentials": [{"kind": "anthropic", "fingerprint": f, "source": "env", "where": "pid 4242 env KEY"}
                        for f in fingerprints],
        "flags": list(flags),
        "evidence": [{"kind": "process", "rule": "exe", "detail": "node running claude"}],
        "first_seen": seen, "last_seen": seen,
    }  # fmt: skip
    doc.update(extra)
    return doc


def device_doc(device_id: str, hostname: str | None = None, os: str = "linux") -> dict[str, Any]:
    return {"id": device_id, "hostname": hostname or device_id.replace("host:", ""), "os": os,
            "os_version": "6.1", "arch": "x86_64", "agentroster_version": "0.1.0"}  # fmt: skip


def report(device: dict[str, Any], *, epoch: str = "e1", seq: int = 1, kind: str = "delta",
           upserts: list[dict[str, Any]] | None = None, removed: list[str] | None = None,
           status: dict[str, Any] | None = None, part: int | None = None,
           parts: int | None = None) -> dict[str, Any]:
    """A report document (as JSON-ready dict) from one device."""
    doc: dict[str, Any] = {"schema": "agentroster.report/1", "epoch": epoch, "seq": seq, "kind": kind,
                           "sent_at": now_iso(), "device": device, "upserts": upserts or [],
                           "removed": removed or [], "errors": []}  # fmt: skip
    if status is not None:
        doc["status"] = status
    if part is not None:
        doc["part"] = part
    if parts is not None:
        doc["parts"] = parts
    return doc


# -- a realistic machine, for the bench ----------------------------------------------------------------


@dataclass
class SimDevice:
    """One machine's agents, changing a little between reports, as its daemon would report them."""

    device_id: str
    rng: random.Random
    sightings: dict[str, dict[str, Any]] = field(default_factory=dict)
    epoch: str = "e1"
    seq: int = 0
    counter: int = 0

    @classmethod
    def build(cls, index: int, seed: int = 0) -> SimDevice:
        sim = cls(f"host:ws-{index:05d}", random.Random(f"{seed}:{index}"))
        sim._add_runtime()
        if sim.rng.random() < 0.5:
            sim._add_unknown()
        while len(sim.sightings) < 24:  # enough for a 20-sighting delta
            sim._add_coding_agent()
        return sim

    @property
    def device(self) -> dict[str, Any]:
        return device_doc(self.device_id, os=("linux", "macos", "windows")[int(stable_id(self.device_id), 16) % 3])

    def snapshot(self) -> dict[str, Any]:
        self.seq += 1
        return report(self.device, epoch=self.epoch, seq=self.seq, kind="snapshot",
                      upserts=list(self.sightings.values()))

    def delta(self, size: int = 20, change: float = 0.1) -> dict[str, Any]:
        """``size`` upserts; ``change`` of them are material changes (an agent comes or goes, a new
        endpoint), the rest refresh last_seen and endpoint counts.

        ``size=0`` is what the daemon sends: ``change`` of the device's sightings change materially and
        the delta carries just those (new or changed) and the ids of the gone ones; an unchanged
        sighting is not sent again (its last_seen and counters alone are no change to the daemon)."""
        self.seq += 1
        changes = round((size or len(self.sightings)) * change)
        removed, ids = self._material_changes(max(1, changes))
        if not size:
            return report(self.device, epoch=self.epoch, seq=self.seq, kind="delta",
                          upserts=[self._refresh(self.sightings[i]) for i in ids], removed=removed)
        rest = [i for i in self.sightings if i not in ids]
        self.rng.shuffle(rest)
        while len(self.sightings) < size:
            self._add_coding_agent()
        picked = [self._refresh(self.sightings[i]) for i in (ids + rest)[:size]]
        return report(self.device, epoch=self.epoch, seq=self.seq, kind="delta", upserts=picked, removed=removed)

    def _material_changes(self, count: int) -> tuple[list[str], list[str]]:
        """``count`` material changes: the ids gone, and the ids (still present) added or changed."""
        removed: list[str] = []
        changed: list[str] = []
        for _ in range(count):
            before = set(self.sightings)
            changed.extend(self._material_change())
            removed.extend(before - set(self.sightings))
        return [r for r in removed if r not in self.sightings], [i for i in dict.fromkeys(changed)
                                                                 if i in self.sightings]

    # -- building blocks

    def _user(self) -> str:
        return self.rng.choice(USERS)

    def _add_coding_agent(self) -> None:
        sig, name, vendor, provider, host, exe = self.rng.choice(CODING)
        user = self._user()
        self.counter += 1
        agent_id = stable_id(self.device_id, sig, user, str(self.counter))
        flags = ["autonomous"] if self.rng.random() < 0.3 else []
        doc = sighting(id=agent_id, name=name, signature=sig, vendor=vendor, user=user, flags=tuple(flags),
                       providers=(provider,), fingerprints=(fingerprint(self.rng),),
                       pid=self.rng.randint(1000, 60000))
        doc["endpoints"][0]["host"] = host
        doc["processes"][0]["cmdline"] = [exe, "--model", "default"]
        doc["configs"][0]["client"] = sig
        self.sightings[agent_id] = doc
        for server in self.rng.sample(MCP, self.rng.randint(2, 5)):
            self._add_mcp_child(doc, server, user)

    def _add_mcp_child(self, parent: dict[str, Any], server: tuple[Any, ...], user: str) -> None:
        name, command, args, flag = server
        child_id = stable_id(parent["id"], "mcp", name)
        args = [a.format(user=user) for a in args]
        entry = {"name": name, "transport": "stdio", "command": command, "args": args, "url": None,
                 "source": f"/home/{user}/.claude.json", "enabled": True, "project": None}
        parent["mcp_servers"].append(entry)
        child = sighting(id=child_id, name=name, signature=f"mcp-{name}", vendor="MCP", type="tool_server",
                         user=user, parent=parent["id"], flags=(flag,) if flag else (),
                         running=self.rng.random() < 0.7, confidence=0.8, pid=self.rng.randint(1000, 60000))
        child["mcp_servers"] = [entry]
        child["evidence"] = [{"kind": "config", "rule": "mcp-declared", "detail": entry["source"]}]
        self.sightings[child_id] = child

    def _add_runtime(self) -> None:
        sig, name, vendor, port = self.rng.choice(RUNTIMES)
        runtime_id = stable_id(self.device_id, sig)
        doc = sighting(id=runtime_id, name=name, signature=sig, vendor=vendor, type="runtime", user=None,
                       confidence=0.95, pid=self.rng.randint(100, 999))
        doc["endpoints"] = [{"host": "127.0.0.1", "port": port, "provider": sig, "via": "socket",
                             "first_seen": 1.7e9, "last_seen": 1.7e9, "count": 1}]
        self.sightings[runtime_id] = doc

    def _add_unknown(self) -> None:
        self.counter += 1
        unknown_id = stable_id(self.device_id, "unknown", str(self.counter))
        doc = sighting(id=unknown_id, name="python3 report.py", signature=None, vendor="", type="unknown",
                       user=self._user(), providers=("openai",), confidence=0.4,
                       pid=self.rng.randint(1000, 60000))
        doc["processes"][0]["cmdline"] = ["python3", "report.py", "--key", "[REDACTED:openai]"]
        self.sightings[unknown_id] = doc

    def _refresh(self, doc: dict[str, Any]) -> dict[str, Any]:
        seen = now_iso()
        doc["last_seen"] = seen
        for endpoint in doc["endpoints"]:
            endpoint["count"] += 1
            endpoint["last_seen"] += 60.0
        return doc

    def _material_change(self) -> list[str]:
        """One material change; returns the ids of the sightings it added or changed."""
        roll = self.rng.random()
        agents = [s for s in self.sightings.values() if s["type"] == "coding"]
        if roll < 0.15 and len(agents) > 1:
            gone = self.rng.choice(agents)
            for sid in [gone["id"], *(s["id"] for s in self.sightings.values() if s["parent"] == gone["id"])]:
                self.sightings.pop(sid, None)
            return []
        if roll < 0.3:
            before = set(self.sightings)
            self._add_coding_agent()
            return [i for i in self.sightings if i not in before]
        doc = self.sightings[self.rng.choice(list(self.sightings))]
        if roll < 0.65:
            doc["running"] = not doc["running"]
            doc["processes"] = [] if not doc["running"] else [{
                "pid": self.rng.randint(1000, 60000), "ppid": 1, "name": "node", "exe": "/usr/bin/node",
                "cmdline": ["node", "server.js"], "user": doc["user"] or "root", "started": 1.7e9}]
            return [doc["id"]]
        doc["endpoints"].append({"host": f"api{self.rng.randint(1, 9)}.example-llm.com", "port": 443,
                                 "provider": "openai", "via": "dns", "first_seen": 1.7e9,
                                 "last_seen": 1.7e9, "count": 1})
        return [doc["id"]]
