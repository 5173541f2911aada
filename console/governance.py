"""Governance: whether a sighting is governed, which collector flags it carries and why, and how the
console names a sighting's type, as pure functions.

The collector owns five flags (``unregistered``, ``pending``, ``drift``, ``unsanctioned_provider``,
``personal_credential``); the endpoint owns the rest, but the collector adds ``broad_tools`` too where an
MCP server matches one of the policy's risky-tool patterns, on top of the flags the device sent. A
sighting is covered when the org policy sanctions its signature (for everyone, or, a group approval, for
the users it names), when an admin approved it, or when an approved registration declares it; it is governed when covered and what it does stays inside what was
approved (no ``drift``). No I/O here: the collector calls ``assess`` at ingest, when the policy changes,
and when a sighting is triaged or registered.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from contract.scan import COLLECTOR_FLAGS, FLAG_MEANINGS

#: where a stored sighting's detail keeps the flags its device sent (``sent_flags``)
DEVICE_FLAGS = "device_flags"

#: a human sentence for every flag, as the console shows it
EXPLANATIONS: dict[str, str] = FLAG_MEANINGS

RegistrationStatus = Literal["pending", "approved"]

#: How much each flag adds to a sighting's risk score (0-100: the weights add up to 100, so a sighting
#: carrying every flag scores 100). What can leak or do damage now weighs most: a key in clear text, a
#: personal key the organisation cannot rotate, an agent acting without a human, tools that reach a shell
#: or a database; then what is outside what the organisation agreed to; least, what only awaits paperwork.
#:
#: | flag | weight | why |
#: |---|---|---|
#: | plaintext_secret | 25 | a credential anyone reading the file can take |
#: | personal_credential | 20 | a key the organisation neither issued nor can revoke |
#: | autonomous | 15 | acts without a human approving each step |
#: | broad_tools | 15 | reaches a shell, the whole disk, a browser or a database |
#: | drift | 10 | does more than was approved |
#: | remote_tool_server | 5 | sends work to a tool server outside the organisation |
#: | unsanctioned_provider | 5 | sends prompts to a provider not on the allow-list |
#: | unregistered | 4 | nobody answers for it yet |
#: | pending | 1 | registered, awaiting an admin |
RISK_WEIGHTS: dict[str, int] = {
    "plaintext_secret": 25, "personal_credential": 20, "autonomous": 15, "broad_tools": 15, "drift": 10,
    "remote_tool_server": 5, "unsanctioned_provider": 5, "unregistered": 4, "pending": 1,
}  # fmt: skip
RISK_MAX = sum(RISK_WEIGHTS.values())


@dataclass(frozen=True, slots=True)
class Policy:
    """The org's policy: sanctioned signatures and providers, and its corporate credential fingerprints.

    An empty allow-list sanctions nothing: a new collector flags every provider and every key until
    the org says which ones are its own.
    """

    sanctioned_signatures: frozenset[str] = frozenset()
    sanctioned_providers: frozenset[str] = frozenset()
    corporate_fingerprints: frozenset[str] = frozenset()
    risky_tools: frozenset[str] = frozenset()  # glob patterns on MCP server names and commands
    # group approvals: (signature, user names or globs) sanctions the signature for those users only
    group_approvals: frozenset[tuple[str, tuple[str, ...]]] = frozenset()

    @classmethod
    def of(cls, signatures: Iterable[str] = (), providers: Iterable[str] = (),
           fingerprints: Iterable[str] = (), risky_tools: Iterable[str] = (),
           group_approvals: Iterable[Mapping[str, Any]] = ()) -> Policy:
        return cls(frozenset(signatures), frozenset(providers), frozenset(fingerprints), frozenset(risky_tools),
                   groups_of(group_approvals))

    def sanctions(self, signature: str | None, user: str | None = None) -> bool:
        """Whether the policy sanctions the signature, for everyone or for this user by a group approval."""
        if signature is None:
            return False
        if signature in self.sanctioned_signatures:
            return True
        return bool(user) and any(s == signature and _user_matches(users, user or "")
                                  for s, users in self.group_approvals)


def groups_of(approvals: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, tuple[str, ...]]]:
    """The policy document's group approvals (``{"signature", "users"}``) as ``Policy.group_approvals``;
    an entry not of that shape counts for nothing."""
    out = set()
    for entry in approvals:
        signature, users = entry.get("signature"), entry.get("users")
        if isinstance(signature, str) and signature and isinstance(users, list):
            named = tuple(sorted({u for u in users if isinstance(u, str) and u}))
            if named:
                out.add((signature, named))
    return frozenset(out)


@functools.lru_cache(maxsize=4096)
def _user_matches(patterns: tuple[str, ...], user: str) -> bool:
    """A user name matches a group's entry exactly or as a glob, in any case (``*@sales.example.com``,
    ``alice``); a machine-wide install (no user) belongs to no group."""
    name = user.lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns)


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a sighting may do: the providers it calls, the MCP servers (tools) it uses, its autonomy.

    A registration declares one; an admin's approval of a sighting records what it did when approved.
    """

    providers: frozenset[str] = frozenset()
    tools: frozenset[str] = frozenset()
    autonomous: bool = False

    @classmethod
    def of(cls, providers: Iterable[str] = (), tools: Iterable[str] = (), autonomous: bool = False) -> Declaration:
        return cls(frozenset(providers), frozenset(tools), autonomous)


@dataclass(frozen=True, slots=True)
class Standing:
    """A sighting's own standing beyond the policy: an admin's approval, and its registration."""

    approval: Declaration | None = None  # approved by an admin, with what it did then
    registration: RegistrationStatus | None = None  # the registration that counts: approved, else pending
    declaration: Declaration | None = None  # what the approved registration declares

    @property
    def empty(self) -> bool:
        return self.approval is None and self.registration is None


NO_STANDING = Standing()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the collector concludes about one sighting."""

    governed: bool
    flags: tuple[str, ...]  # every flag, the endpoint's and the collector's, sorted
    reasons: tuple[tuple[str, str], ...] = ()  # (collector flag, one line about this sighting), in flag order

    def reason(self, flag: str) -> str:
        return next((r for f, r in self.reasons if f == flag), "")


def assess(signature: str | None, providers: Iterable[str], fingerprints: Iterable[str],
           device_flags: Iterable[str], policy: Policy, standing: Standing = NO_STANDING,
           mcp_servers: Iterable[str] = (), risky: Iterable[str] = (), user: str | None = None,
           tools: tuple[Iterable[str], Iterable[str]] = ((), ())) -> Verdict:
    """Governed or not, with the sighting's full flag list (collector flags recomputed) and the reasons.
    ``user``: the sighting's, for the policy's group approvals. ``tools``: the MCP tools its configs name and
    the tools its code declares (``mcp_tools_of``, ``project_tools_of``), drift where a declaration names
    tools (``tools_beyond``).

    ``risky``: its MCP servers that the policy's risky-tool patterns match (``risky_tools``); any makes
    it ``broad_tools``, as the endpoint's own judgement of its tools does."""
    flags = {f for f in device_flags if f not in COLLECTOR_FLAGS}
    providers, fingerprints = sorted(set(providers)), sorted(set(fingerprints))
    reasons: dict[str, str] = {}
    sanctioned = policy.sanctions(signature, user)
    covered = sanctioned or standing.approval is not None or standing.registration == "approved"
    if not covered:
        if standing.registration == "pending":
            reasons["pending"] = "registered; the registration awaits an admin's approval"
        else:
            reasons["unregistered"] = (f"the policy does not sanction {signature}, and nobody registered it"
                                       if signature is not None
                                       else "no signature the policy could sanction, and nobody registered it")
    gaps = _drift(providers, sorted(set(mcp_servers)), "autonomous" in flags, standing,
                  (sorted(set(tools[0])), sorted(set(tools[1]))))
    if gaps:
        reasons["drift"] = "; ".join(gaps)
    outside = [p for p in providers if p not in policy.sanctioned_providers]
    if outside:
        reasons["unsanctioned_provider"] = f"calls {_list(outside)}, not on the allow-list"
    personal = [f for f in fingerprints if f not in policy.corporate_fingerprints]
    if personal:
        reasons["personal_credential"] = f"uses {_count(len(personal), 'key')} that {_is(len(personal))} not corporate"
    risky = sorted(set(risky))
    if risky:
        reasons["broad_tools"] = f"uses {_list(risky)}, on the policy's risky-tool list"
    flags.update(reasons)
    return Verdict(governed=covered and not gaps, flags=tuple(sorted(flags)),
                   reasons=tuple(sorted(reasons.items())))


def _drift(providers: list[str], tools: list[str], autonomous: bool, standing: Standing,
           named: tuple[list[str], list[str]] = ([], [])) -> list[str]:
    """What the sighting does beyond its approved declaration and beyond what it did when approved."""
    gaps: list[str] = []
    for declared, beyond in ((standing.declaration if standing.registration == "approved" else None, "not declared"),
                             (standing.approval, "not seen when approved")):
        if declared is None:
            continue
        gaps += [f"calls {p}, {beyond}" for p in providers if p not in declared.providers]
        gaps += [f"uses MCP server {t}, {beyond}" for t in tools if t not in declared.tools]
        gaps += [f"uses tool {t}, {beyond}" for t in tools_beyond(declared.tools, *named)]
        if autonomous and not declared.autonomous:
            gaps.append("runs autonomously, " + ("declared supervised" if beyond == "not declared"
                                                 else "was supervised when approved"))
    return list(dict.fromkeys(gaps))


def risk_of(flags: Iterable[str]) -> int:
    """A sighting's risk score, 0-100: the sum of its flags' weights (``RISK_WEIGHTS``)."""
    return sum(RISK_WEIGHTS.get(f, 0) for f in set(flags))


def risk_reasons(flags: Iterable[str]) -> list[tuple[str, int]]:
    """The flags that make up a sighting's risk score, heaviest first: ``[(flag, weight), ...]``."""
    weighed = [(f, RISK_WEIGHTS[f]) for f in set(flags) if f in RISK_WEIGHTS]
    return sorted(weighed, key=lambda fw: (-fw[1], fw[0]))


def reach_of(mcp_servers: Iterable[Mapping[str, object]]) -> str:
    """What free text finds a sighting by beyond its name: its MCP servers' names, commands, URLs and
    arguments (already scrubbed of credentials), lower-cased, one space apart. (The providers it calls are
    found through their tags.)"""
    words: list[str] = []
    for server in mcp_servers:
        for key in ("name", "command", "url"):
            value = server.get(key)
            if isinstance(value, str) and value:
                words.append(value)
        args = server.get("args")
        if isinstance(args, list):
            words += [a for a in args if isinstance(a, str) and a]
    return " ".join(dict.fromkeys(w.lower() for w in words))[:4000]


def explain(flag: str) -> str:
    """A human sentence for a flag (every flag of DESIGN.md's table; a plain fallback for others)."""
    return EXPLANATIONS.get(flag, f"Flagged {flag.replace('_', ' ')}.")


def providers_of(endpoints: Iterable[Mapping[str, object]]) -> list[str]:
    """The distinct LLM providers a sighting's endpoints reach, sorted."""
    return sorted({p for e in endpoints if isinstance(p := e.get("provider"), str) and p})


def fingerprints_of(credentials: Iterable[Mapping[str, object]]) -> list[str]:
    """The distinct credential fingerprints a sighting uses, sorted."""
    return sorted({f for c in credentials if isinstance(f := c.get("fingerprint"), str) and f})


def risky_tools(mcp_servers: Iterable[Mapping[str, object]], patterns: Iterable[str]) -> list[str]:
    """The names of the MCP servers that match one of the policy's risky-tool patterns, sorted.

    A pattern is a case-insensitive glob (``*``, ``?``, ``[...]``) matched against the server's name,
    its command, and its command line (command and arguments joined by spaces): ``*shell*`` or
    ``npx*server-postgres*`` count the server among an agent's broad tools. A server the config turns
    off (``enabled: false``) counts for nothing, as on the endpoint."""
    policy = frozenset(patterns)  # a policy's own frozenset stays itself: hashed once, then cache hits
    if _matcher(policy) is None:
        return []
    found: set[str] = set()
    for server in mcp_servers:
        if server.get("enabled") is False:
            continue
        name, command, given = server.get("name"), server.get("command"), server.get("args")
        name = name if isinstance(name, str) else ""
        command = command if isinstance(command, str) else ""
        args = tuple(a for a in given if isinstance(a, str)) if isinstance(given, list) else ()
        if _risky(policy, name, command, args):
            found.add(name or command)
    return sorted(found)


@functools.lru_cache(maxsize=16384)
def _risky(patterns: frozenset[str], name: str, command: str, args: tuple[str, ...]) -> bool:
    """Whether one server matches: the same few servers are declared on machine after machine, so each is
    matched once per policy, whatever the number of patterns."""
    match = _matcher(patterns)
    subjects = [s.lower() for s in (name, command, " ".join([command, *args]).strip()) if s]
    return match is not None and any(match(s) for s in subjects)


@functools.lru_cache(maxsize=16)
def _matcher(patterns: frozenset[str]) -> Callable[[str], object] | None:
    """One regular expression for all of a policy's patterns (each an atomic-group translation, so
    that ``*a*b*c*`` cannot backtrack without end): compiled once per policy, not per server."""
    globs = sorted({p.lower() for p in patterns if p})
    if not globs:
        return None
    return re.compile("|".join(fnmatch.translate(g) for g in globs)).match


def sent_flags(detail: Mapping[str, object], stored: Iterable[str]) -> list[str]:
    """The flags the device itself sent for a stored sighting: its detail's ``device_flags``, or, for a
    sighting stored without them, its stored flags less the collector's (the collector added no other
    flag to such a row: it records ``device_flags`` before it writes any flag of its own)."""
    sent = detail.get(DEVICE_FLAGS)
    if isinstance(sent, list):
        return [f for f in sent if isinstance(f, str)]
    return [f for f in stored if f not in COLLECTOR_FLAGS]


def tools_of(mcp_servers: Iterable[Mapping[str, object]]) -> list[str]:
    """The distinct names of the MCP servers a sighting uses, sorted."""
    return sorted({n for m in mcp_servers if isinstance(n := m.get("name"), str) and n})


def mcp_tools_of(mcp_servers: Iterable[Mapping[str, object]]) -> list[str]:
    """The tools configs name for their MCP servers (an allow or auto-approve list), each as ``server/tool``,
    sorted; a server the config turns off names none."""
    found: set[str] = set()
    for server in mcp_servers:
        name, tools = server.get("name"), server.get("tools")
        if server.get("enabled") is False or not isinstance(name, str) or not name or not isinstance(tools, list):
            continue
        found |= {f"{name}/{t}" for t in tools if isinstance(t, str) and t}
    return sorted(found)


def project_tools_of(project: object) -> list[str]:
    """The tools an enterprise agent's code declares (its project's ``tools``), sorted."""
    tools = project.get("tools") if isinstance(project, Mapping) else None
    return sorted({t for t in tools if isinstance(t, str) and t}) if isinstance(tools, list) else []


def tools_beyond(declared: Iterable[str], mcp_tools: Iterable[str], project_tools: Iterable[str]) -> list[str]:
    """The tools a sighting names that a declaration does not, judged only where the declaration names
    tools: an MCP server's ``server/tool`` where it names some tool of that server (``github/create_issue``),
    a tool of the agent's code where it names some tool of the code. A declaration that names only MCP
    servers (``github``) lets them bring whatever tools they have."""
    named = set(declared)
    servers = {d.rsplit("/", 1)[0] for d in named if "/" in d}
    code = sorted(set(project_tools))
    beyond = {t for t in mcp_tools if t not in named and t.rsplit("/", 1)[0] in servers}
    if named.intersection(code):
        beyond |= {t for t in code if t not in named}
    return sorted(beyond)


# -- classification ----------------------------------------------------------------------------------

#: MCP servers and hosts that reach business systems: an agent using them works across systems
BUSINESS_SYSTEMS = frozenset({
    "postgres", "postgresql", "mysql", "sqlite", "mongodb", "redis", "snowflake", "bigquery", "salesforce",
    "hubspot", "slack", "gmail", "google-drive", "gdrive", "jira", "confluence", "notion", "linear", "zendesk",
    "stripe", "sharepoint", "outlook", "teams", "servicenow", "workday", "airtable", "sentry",
})  # fmt: skip
#: local model runtimes (providers.yaml ``local: true``): calling one keeps prompts on the machine
LOCAL_RUNTIMES = frozenset({"ollama", "lm-studio", "llama-cpp", "vllm", "localai", "gpt4all", "koboldcpp",
                            "text-generation-webui", "jan"})
LONG_LIVED_SECONDS = 6 * 3600.0


def classify(sighting: Mapping[str, Any], *, now: float | None = None) -> tuple[str, str]:
    """The sighting's type and a one-line reason: from its signature when it matched one, else from what
    it does (the calls, servers, configs and processes it was seen with)."""
    signature, kind = sighting.get("signature"), str(sighting.get("type") or "unknown")
    if signature:
        project = sighting.get("project")
        if isinstance(project, Mapping) and project.get("framework"):
            # an enterprise agent is named after its project ("app.worker in /srv/…"), not its framework
            return kind, f"runs {project.get('entry') or 'a project'} on {project['framework']} ({signature} signature)"
        name = sighting.get("name") or signature
        return kind, f"matches the {name} signature ({signature})"
    providers = providers_of(sighting.get("endpoints") or [])
    tools = tools_of(sighting.get("mcp_servers") or [])
    remote = [p for p in providers if p not in LOCAL_RUNTIMES]
    calling = f"calling {_list(remote)}" if remote else f"calling the local model {_list(providers)}" if providers else ""
    systems = sorted({t for t in tools if t.lower() in BUSINESS_SYSTEMS})
    if systems and (calling or _long_lived(sighting, now)):
        how = "long-lived, " if _long_lived(sighting, now) else ""
        return "enterprise", f"{how}{calling or 'runs unattended'} and reaches {_list(systems)}"
    if calling and _in_repository(sighting):
        return "coding", f"{calling} from inside a code repository"
    if calling and tools:
        return "unknown", f"unknown agent {calling}, with MCP servers {_list(tools)}"
    if calling:
        return "unknown", f"unknown agent {calling}"
    if tools:
        return "unknown", f"unknown agent spawning MCP servers {_list(tools)}"
    if kind != "unknown":
        return kind, f"reported as {kind} by the endpoint; matches no signature"
    return "unknown", "talks to an LLM or tool endpoint but matches no signature"


def _long_lived(sighting: Mapping[str, Any], now: float | None) -> bool:
    if now is None:
        return False
    started = [p.get("started") for p in sighting.get("processes") or []]
    return any(isinstance(s, int | float) and now - s >= LONG_LIVED_SECONDS for s in started)


def _in_repository(sighting: Mapping[str, Any]) -> bool:
    return any(c.get("scope") == "project" for c in sighting.get("configs") or [])


def _list(items: list[str], shown: int = 3) -> str:
    head = ", ".join(items[:shown])
    return head if len(items) <= shown else f"{head} and {len(items) - shown} more"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _is(n: int) -> str:
    return "is" if n == 1 else "are"
