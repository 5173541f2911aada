"""Projects: which agent framework a process's project shows, and the evidence lines that say why.

Pure logic over the ``Project`` record the process sensor read (``endpoint.scan.projects``): a Python
project is a framework's when one of its modules imports that framework (an import in the script named
on the command line is matched by the signatures already; this looks at the whole project); a Node
project when it imports the framework or declares it in its package.json. What is installed in the
interpreter's venv, and the native libraries it maps, only add evidence: a venv holding LangGraph is
no agent until its code imports it. Each fact is its own evidence line, with a reason a person can read
("imports langgraph in app/graph.py", "langgraph 1.2.24 in its venv").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contract import scan as contract
    from endpoint.scan.evidence import ProcessRecord, Project
    from signatures import Library, Match
    from signatures.runtime import Signature

#: words in an SDK's or integration's module or package name -> the provider it calls
_PROVIDER_WORDS = {"openai": "openai", "anthropic": "anthropic", "mistralai": "mistral", "mistral": "mistral",
                   "groq": "groq", "cohere": "cohere", "ollama": "ollama", "together": "together",
                   "deepseek": "deepseek", "genai": "google-gemini", "generativeai": "google-gemini",
                   "google": "google-gemini", "bedrock": "aws-bedrock", "xai": "xai", "fireworks": "fireworks"}
_WORDS = re.compile(r"[A-Za-z0-9]+")


class Frameworks:
    """The enterprise signatures as a project's imports and packages name them."""

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self.modules: dict[str, Signature] = {}
        for sig in lib.signatures:
            if sig.type == "enterprise":
                for module in sig.process.script_imports:
                    self.modules.setdefault(module.lower(), sig)
        self.order = {sig.id: i for i, sig in enumerate(lib.signatures)}
        kinds = {k.id: k for k in lib.credential_kinds}
        self.env_providers: dict[str, str] = {}
        for provider in lib.providers:
            kind = kinds.get(provider.credential or "")
            for name in kind.env if kind is not None else ():
                self.env_providers.setdefault(name.upper(), provider.id)

    def of_import(self, project: Project, module: str) -> Signature | None:
        if project.kind == "node":
            sig = self.lib.match_package("npm", module)
            return sig if sig is not None and sig.type == "enterprise" else None
        parts = module.lower().split(".")
        for n in range(len(parts), 0, -1):
            sig = self.modules.get(".".join(parts[:n]))
            if sig is not None:
                return sig
        return None

    def of_package(self, ecosystem: str, name: str) -> Signature | None:
        sig = self.lib.match_package("npm" if ecosystem == "npm" else "pypi", name)
        return sig if sig is not None and sig.type == "enterprise" else None

    def match(self, project: Project) -> Match | None:
        """The framework the project's code uses (most imports, then pack order), or None."""
        from signatures.matching import Match

        platform = self.lib.by_id.get(project.platform) if project.platform else None
        if platform is not None and project.platform == "dify":  # its apps are in PostgreSQL: named, not listed
            version = next((v for _, n, v, _ in project.packages if n == "dify-api"), "")
            return Match(platform, "project.platform", f"Dify {version} api folder {project.root} (its pyproject.toml "
                                                       "names dify-api); its apps are in PostgreSQL and not read"
                         .replace("  ", " "))
        if platform is not None:
            count = len(project.workflows)
            return Match(platform, "project.workflows", f"{count} workflow{'s' if count != 1 else ''} with AI agent nodes "
                                                        f"in {project.root}")
        found: dict[str, tuple[int, Signature, str, str]] = {}
        for module, file in project.imports:
            sig = self.of_import(project, module)
            if sig is not None:
                count, _, rule, detail = found.get(sig.id, (0, sig, "project.imports", f"imports {module} in {file}"))
                found[sig.id] = (count + 1, sig, rule, detail)
        if project.kind == "node":
            for ecosystem, name, version, where in project.packages:
                sig = self.of_package(ecosystem, name)
                if sig is not None and sig.id not in found:
                    found[sig.id] = (1, sig, "project.dependency", f"depends on {name} {version} ({where})".strip())
        if not found:
            return None
        _, sig, rule, detail = max(found.values(), key=lambda f: (f[0], -self.order.get(f[1].id, 0)))
        return Match(sig, rule, detail)

    def evidence(self, project: Project, sig: Signature) -> list[tuple[str, str]]:
        """(rule, detail) of each fact of the project that speaks for ``sig``."""
        lines: list[tuple[str, str]] = []
        for module, file in project.imports:
            if self.of_import(project, module) is sig:
                lines.append(("project.imports", f"imports {module} in {file}"))
        for ecosystem, name, version, where in project.packages:
            if self.of_package(ecosystem, name) is sig:
                place = "its venv" if ecosystem == "pypi" else f"its {where}"
                rule = "project.installed" if ecosystem == "pypi" or where == "node_modules" else "project.dependency"
                lines.append((rule, f"{name} {version} in {place}".replace("  ", " ")))
        for package, library in project.native:
            lines.append(("project.native", f"maps {package}'s native library {library}"))
        for name, active, agents, providers, credentials in project.workflows:
            said = [f"{agents} AI agent node{'s' if agents != 1 else ''}"]
            said += [f"providers {', '.join(providers)}"] if providers else []
            said += [f"credentials {', '.join(credentials)}"] if credentials else []
            lines.append(("project.workflows", f"workflow {name!r} ({'active' if active else 'inactive'}): "
                                               + "; ".join(said)))
        return lines

    def version(self, project: Project, sig: Signature) -> str | None:
        """The framework's version: its own package's, else the first of the signature's packages found."""
        from signatures.matching import pep503

        if project.platform == "dify":  # the version its api folder's pyproject.toml names
            return next((v for _, n, v, _ in project.packages if n == "dify-api" and v), None)
        own = pep503(self.framework(project, sig))
        versions = [(pep503(name) == own, version) for ecosystem, name, version, _ in project.packages
                    if version and self.of_package(ecosystem, name) is sig]
        return max(versions, key=lambda v: v[0])[1] if versions else None

    def framework(self, project: Project, sig: Signature) -> str:
        """The framework's package as the project names it (``langgraph``, ``@langchain/langgraph``): of the
        modules it imports and the packages it declares, one the signature lists as its own before an
        integration (``langchain_openai``), a plain name before a helper (``langchain_core``,
        ``@langchain/core``), the most imported, the last the signature lists."""
        from signatures.matching import pep503

        python = project.kind == "python"
        own = {pep503(n) for n in sig.packages.pypi} if python else {n.lower() for n in sig.packages.npm}
        listed = [m.lower() for m in (sig.process.script_imports if python else sig.packages.npm)]
        counts: dict[str, int] = {}
        for module, _ in project.imports:
            if self.of_import(project, module) is sig:
                name = module.split(".")[0] if python else module
                counts[name] = counts.get(name, 0) + 1
        for ecosystem, name, _, _ in project.packages:
            if not python and self.of_package(ecosystem, name) is sig:
                counts.setdefault(name, 0)
        if not counts:
            return sig.id

        def rank(name: str) -> tuple[bool, bool, int, int]:
            helper = "_" in name if python else name.endswith("/core") and len(counts) > 1
            key = pep503(name) if python else name.lower()
            return key in own, not helper, counts[name], listed.index(name.lower()) if name.lower() in listed else -1

        return max(counts, key=rank)

    def providers(self, project: Project, proc: ProcessRecord) -> list[str]:
        """Providers it is configured for: its environment's variable names and its SDK imports (never values)."""
        found: dict[str, None] = {}
        for name in sorted(proc.env_keys):
            provider = self.env_providers.get(name.upper())
            if provider is not None:
                found.setdefault(provider, None)
        for _, _, _, providers, _ in project.workflows:
            for provider in providers:
                found.setdefault(provider, None)
        for module, _ in project.imports:
            for word in _WORDS.findall(module.lower()):
                provider = _PROVIDER_WORDS.get(word)
                if provider is not None:
                    found.setdefault(provider, None)
                    break
        return list(found)[:16]

    def info(self, project: Project, sig: Signature, proc: ProcessRecord) -> contract.Project:
        return {"root": project.root, "entry": project.entry, "language": project.kind,
                "framework": self.framework(project, sig), "version": self.version(project, sig),
                "providers": self.providers(project, proc), "models": list(project.models),
                "tools": list(project.tools),
                "workflows": [{"name": name, "active": active, "agent_nodes": agents, "providers": list(providers),
                               "credentials": list(credentials)}
                              for name, active, agents, providers, credentials in project.workflows]}
