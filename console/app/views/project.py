"""Why an enterprise agent is one: the detail pane's "Why" tab, for a sighting whose report carries its
project (``contract.scan.Project``).

It says, in plain words, which evidence made the agent and how much each line counts, then the project
(name, folder, entry), its framework and version, the providers and models it is configured for, the
tools it declares and, for a workflow platform (n8n, Flowise, Langflow, Dify), its workflows with AI
agent nodes. Everything here came from files a user controls: it is shown as plain text (never rich
text) in the palette's own colours, so it reads the same in a light and a dark theme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from console.app import api, theme
from console.app.plain_text import plain_label

#: how much each kind of evidence says that the agent is really there, as the endpoint weighs it when it
#: sums a sighting's confidence (its registry's weights; a test keeps the two in step)
EVIDENCE_WEIGHTS: dict[str, float] = {
    "process.cmdline": 0.9, "process.exe": 0.9, "process.names": 0.8, "process.script_imports": 0.7,
    "project.imports": 0.7, "project.dependency": 0.6, "project.installed": 0.4, "project.native": 0.2,
    "project.workflows": 0.6,
}

#: the frameworks as their makers write them, by the package name a project uses
FRAMEWORK_NAMES: dict[str, str] = {
    "langgraph": "LangGraph", "@langchain/langgraph": "LangGraph", "langchain": "LangChain",
    "@langchain/core": "LangChain", "crewai": "CrewAI", "autogen": "AutoGen", "autogen_agentchat": "AutoGen",
    "pyautogen": "AutoGen", "agents": "OpenAI Agents SDK", "openai-agents": "OpenAI Agents SDK",
    "@openai/agents": "OpenAI Agents SDK", "llama_index": "LlamaIndex", "llamaindex": "LlamaIndex",
    "semantic_kernel": "Semantic Kernel", "smolagents": "smolagents", "pydantic_ai": "Pydantic AI",
    "google.adk": "Google ADK", "agno": "Agno", "letta": "Letta", "ai": "Vercel AI SDK", "mastra": "Mastra",
    "@mastra/core": "Mastra", "n8n": "n8n", "flowise": "Flowise", "langflow": "Langflow", "dify": "Dify",
}
PLATFORMS = frozenset({"n8n", "flowise", "langflow", "dify"})


def framework_name(project: Mapping[str, Any], signature: str | None = None) -> str:
    """The framework as a person names it (``LangGraph`` for ``langgraph``), else as the project does."""
    framework = str(project.get("framework") or signature or "")
    return FRAMEWORK_NAMES.get(framework.lower(), framework or "an agent framework")


def weight_words(rule: str) -> str:
    """An evidence line's weight in plain words, with the number the endpoint gave it."""
    weight = EVIDENCE_WEIGHTS.get(rule)
    if weight is None:
        return "supporting evidence"
    words = ("decisive" if weight >= 0.8 else "strong" if weight >= 0.6 else "supporting" if weight >= 0.4
             else "a weak hint alone")
    return f"{words} ({weight:.1f})"


def _listed(values: Sequence[Any] | None, none: str) -> str:
    shown = [str(v) for v in values or () if str(v)]
    return ", ".join(shown) if shown else none


def why_title(detail: api.AgentDetail) -> str:
    """"Why this is a LangGraph agent", or "" for a sighting without a project."""
    if not detail.project:
        return ""
    name = framework_name(detail.project, detail.signature)
    # the article goes by how the name sounds: "an n8n agent", "an AutoGen agent", "a LangGraph agent"
    article = "an" if name[:1].lower() in "aeio" or name.lower().startswith(("n8n", "llm")) else "a"
    return f"Why this is {article} {name} agent"


def why_text(detail: api.AgentDetail) -> str:
    """The tab's text: the evidence with its weights, then the project, its framework, providers, models,
    tools and a platform's workflows. Plain text, one fact a line."""
    project = detail.project
    if not project:
        return ""
    root = str(project.get("root") or "")
    name = root.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or root or "(unnamed)"
    lines = ["The evidence the endpoint found, each with how much it counts:"]
    for evidence in detail.evidence:
        lines.append(f"  • {evidence.get('detail', '')} — {weight_words(str(evidence.get('rule', '')))}")
    if not detail.evidence:
        lines.append("  (none reported)")
    lines.append(f"Together: confidence {detail.confidence:.2f} of 1.")
    framework = framework_name(project, detail.signature)
    version = project.get("version")
    lines += [
        "",
        f"Project: {name}",
        f"Folder: {root or '(unknown)'}",
        f"Entry: {project.get('entry') or '(unknown)'} ({project.get('language') or 'unknown language'})",
        f"Framework: {framework}"
        + (f" ({project.get('framework')})" if project.get("framework") and project.get("framework") != framework
           else "") + (f", version {version}" if version else ", version unknown"),
        f"Providers: {_listed(project.get('providers'), 'none found')}",
        f"Models: {_listed(project.get('models'), 'none written in its code')}",
        f"Tools it declares: {_listed(project.get('tools'), 'none declared statically')}",
    ]
    workflows = project.get("workflows") or []
    if workflows or str(detail.signature or "").lower() in PLATFORMS:
        lines += ["", f"Workflows with AI agent nodes: {len(workflows)}"]
        for workflow in workflows:
            nodes = int(workflow.get("agent_nodes") or 0)
            lines.append(f"  • {workflow.get('name', '')} ({'active' if workflow.get('active') else 'inactive'}): "
                         f"{nodes} AI agent node{'' if nodes == 1 else 's'}; providers "
                         f"{_listed(workflow.get('providers'), 'none')}; credential kinds "
                         f"{_listed(workflow.get('credentials'), 'none')}")
    return "\n".join(lines)


class ProjectPane(QScrollArea):
    """The "Why" tab: a bold heading and the plain text of ``why_text``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAccessibleName("Why this is an agent")
        inner = QWidget()
        layout = QVBoxLayout(inner)
        self.title = plain_label()
        self.title.setFont(theme.bold(self.title.font()))
        self.title.setWordWrap(True)
        self.body = plain_label()
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        layout.addStretch(1)
        self.setWidget(inner)

    def show_project(self, detail: api.AgentDetail) -> bool:
        """Fill the tab from ``detail``; False (and empty) when it has no project."""
        self.title.setText(why_title(detail))
        self.body.setText(why_text(detail))
        return bool(detail.project)
