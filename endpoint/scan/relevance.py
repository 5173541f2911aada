"""Which processes no signature claims can still be an agent: the "unknown agent" rules.

One place for them, used by the engine (which makes an ``unknown`` sighting of such a process) and by
the daemon (which reads a new process's environment, and fingerprints again, only where these rules or
a signature say it can change the sightings). A process is an unknown agent when its command line names
a hosted LLM provider's API, or when it is an interpreter that holds an LLM provider's API key, runs a
Python script that imports an LLM SDK, or runs a project (``endpoint.scan.projects``) whose code imports
an LLM SDK or agent framework, or (Node) whose package.json declares one. A project that imports a
framework is the framework's enterprise sighting before the unknown rules are asked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from endpoint.scan.evidence import ProcessRecord

if TYPE_CHECKING:
    from signatures import Library

ReadScript = Callable[[str], str | None]

INTERPRETERS = frozenset({"python", "python3", "pythonw", "node", "nodejs", "bun", "deno", "ruby", "php",
                          "java", "dotnet", "perl"})
LLM_SDK_MODULES = ("openai", "anthropic", "litellm", "google.generativeai", "google.genai", "mistralai",
                   "groq", "cohere", "ollama", "together", "boto3.bedrock")

_HOST_RE = re.compile(r"https?://([A-Za-z0-9.-]+)")


@functools.lru_cache(maxsize=4096)
def program_name(path: str) -> str:
    """A program's name as the rules compare it: the last path component, lower case, without a Windows
    suffix, and ``python3.12`` as ``python``."""
    # Asked several times of every process of a scan, of a few hundred distinct paths.
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    for suffix in (".exe", ".cmd", ".bat"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"(\d+(\.\d+)*)$", "", name) if name.startswith("python") else name


def is_interpreter(proc: ProcessRecord) -> bool:
    return program_name(proc.exe or proc.name) in INTERPRETERS \
        or bool(proc.cmdline) and program_name(proc.cmdline[0]) in INTERPRETERS


def script_of(argv: Sequence[str]) -> str | None:
    """The script (or ``-m`` module) an interpreter's command line runs, if it names one."""
    if len(argv) < 2 or program_name(argv[0]) not in INTERPRETERS:
        return None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None)
        if arg in ("-c", "-e", "--eval"):
            return None
        if not arg.startswith("-"):
            return arg
    return None


def hosts_in(text: str) -> list[str]:
    """The host names of the http(s) URLs in ``text``."""
    return _HOST_RE.findall(text) if "://" in text else []


def llm_credential_kinds(lib: Library) -> frozenset[str]:
    """The credential kinds that are an LLM provider's API key."""
    return frozenset(p.credential for p in lib.providers if p.credential)


def unknown_reason(proc: ProcessRecord, lib: Library, *, llm_kinds: frozenset[str],
                   read_script: ReadScript | None) -> tuple[str, str] | None:
    """Why ``proc`` is an unknown agent, as (evidence rule, detail), or None when it is not one.

    The credential rule needs the process's details (its environment) to have been read; the host rule
    needs only its command line. ``read_script`` reads a script named on the command line (relative to
    the process's working directory); without one, scripts are not looked at.
    """
    for host in hosts_in(" ".join(proc.cmdline)):
        provider = lib.provider_for_host(host)
        if provider is not None and not provider.local:
            return "unknown.host", f"command line names {provider.name}'s API ({host})"
    if not is_interpreter(proc):
        return None  # the other reasons are an interpreter's (and most processes are none)
    llm_creds = [c for c in proc.credentials if c.kind in llm_kinds]
    if llm_creds:
        return "unknown.credential", f"an interpreter holding a {llm_creds[0].kind} API key"
    base = program_name(proc.exe or proc.name)
    argv0 = program_name(proc.cmdline[0]) if proc.cmdline else ""
    script = script_of(proc.cmdline)
    if read_script is not None and script and (base.startswith("python") or argv0.startswith("python")):
        text = read_script(script)
        if text:
            for module in LLM_SDK_MODULES:  # a scan of the text per module: only where the name occurs
                if module in text and re.search(rf"^\s*(from|import)\s+{re.escape(module)}\b", text, re.MULTILINE):
                    return "unknown.sdk", f"its script imports {module}"
    project = proc.project  # read with its details (endpoint.scan.projects): beyond the first file
    if project is not None and project.imports:
        module, where = project.imports[0]
        return "unknown.sdk", f"its project imports {module} in {where}"
    if project is not None and project.kind == "node" and project.packages:
        _, name, _, where = project.packages[0]
        return "unknown.sdk", f"its project depends on {name} ({where})"
    return None
