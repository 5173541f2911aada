"""Flowise and Langflow: the flows a running instance holds that contain AI agent nodes, from its SQLite store.

- Flowise keeps its chatflows and agentflows in ``database.sqlite`` in ``$DATABASE_PATH``, else
  ``~/.flowise``: table ``chat_flow`` (a name, whether it is deployed, the flow as JSON, whose nodes'
  ``data`` give their component ``name``, ``category`` and the credential kinds their ``inputParams``
  accept).
- Langflow keeps its flows in ``langflow.db`` in ``$LANGFLOW_CONFIG_DIR``, else its cache folder
  (``~/.cache/langflow``): table ``flow`` (a name, the flow as JSON, whose nodes' ``data`` give their
  component ``type`` and a ``template`` of fields, the secret ones marked ``password``).

Only names are taken: a component's type, the provider its model component calls, the kind of each
credential (the Flowise credential name, or the Langflow secret field's name), never a value. The stores
are read as n8n's is (``n8n.read_rows``: read-only, the process's user's file, bounded).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from endpoint.scan.projects import Found
from endpoint.scan.projects.n8n import (
    MAX_NODES_JSON,
    MAX_WORKFLOWS,
    VERSION,
    Workflow,
    installed_version,
    read_rows,
)

if TYPE_CHECKING:
    from endpoint.scan.evidence import ProcessRecord
    from endpoint.scan.projects import ProjectReader, Reads

#: Flowise chat model components -> the provider they call
FLOWISE_PROVIDERS = {"chatOpenAI": "openai", "azureChatOpenAI": "azure-openai", "chatAnthropic": "anthropic",
                     "chatGoogleGenerativeAI": "google-gemini", "chatGoogleVertexAI": "google-vertex",
                     "chatMistralAI": "mistral", "groqChat": "groq", "chatOllama": "ollama",
                     "chatDeepseek": "deepseek", "chatOpenRouter": "openrouter", "awsChatBedrock": "aws-bedrock",
                     "chatCohere": "cohere", "chatTogetherAI": "together", "chatFireworks": "fireworks"}
FLOWISE_AGENT_CATEGORIES = frozenset({"Agents", "Multi Agents", "Sequential Agents", "Agent Flows"})
#: Langflow model components, and an Agent's ``agent_llm`` choice -> the provider
LANGFLOW_PROVIDERS = {"OpenAIModel": "openai", "OpenAI": "openai", "AzureOpenAIModel": "azure-openai",
                      "Azure OpenAI": "azure-openai", "AnthropicModel": "anthropic", "Anthropic": "anthropic",
                      "GoogleGenerativeAIModel": "google-gemini", "Google Generative AI": "google-gemini",
                      "OllamaModel": "ollama", "GroqModel": "groq", "Groq": "groq", "MistralModel": "mistral",
                      "AmazonBedrockModel": "aws-bedrock", "Amazon Bedrock": "aws-bedrock",
                      "NVIDIAModelComponent": "nvidia-nim", "DeepSeekModelComponent": "deepseek"}


def _runs(record: ProcessRecord, name: str) -> bool:
    return any(os.path.basename(a) == name or f"/node_modules/{name}/" in a for a in record.cmdline[:3])


def runs_flowise(record: ProcessRecord) -> bool:
    """Whether the process is Flowise (``flowise start``, ``node …/node_modules/flowise/bin/run start``)."""
    return _runs(record, "flowise")


def runs_langflow(record: ProcessRecord) -> bool:
    """Whether the process is Langflow (``langflow run``, ``python -m langflow run``)."""
    return _runs(record, "langflow") or "langflow" in record.cmdline[1:3]


def _folder(record: ProcessRecord, variable: str, default: str) -> str:
    value = record.env_values.get(variable, "")
    if os.path.isabs(value):
        return value
    home = record.env_values.get("HOME", "")
    return os.path.join(home, default) if os.path.isabs(home) else ""


def flowise(record: ProcessRecord, reads: Reads) -> Found | None:
    folder = _folder(record, "DATABASE_PATH", ".flowise")
    if not folder:
        return None
    rows = read_rows(folder, "database.sqlite",
                     "SELECT name, deployed, substr(flowData, 1, ?) FROM chat_flow LIMIT ?",
                     (MAX_NODES_JSON, MAX_WORKFLOWS), reads, "Flowise's database")
    version = installed_version(record, reads, "flowise")
    return Found(folder, "flowise", [], [("npm", "flowise", version, "node_modules")] if version else [],
                 [w for w in (_flowise_flow(*row) for row in rows) if w is not None])


def langflow(record: ProcessRecord, reads: Reads, reader: ProjectReader | None = None) -> Found | None:
    folder = _folder(record, "LANGFLOW_CONFIG_DIR", os.path.join(".cache", "langflow"))
    if not folder:
        return None
    rows = read_rows(folder, "langflow.db", "SELECT name, substr(data, 1, ?) FROM flow LIMIT ?",
                     (MAX_NODES_JSON, MAX_WORKFLOWS), reads, "Langflow's database")
    version = _langflow_version(record, reads, reader) if reader is not None else ""
    return Found(folder, "langflow", [], [("pypi", "langflow", version, "site-packages")] if version else [],
                 [w for w in (_langflow_flow(*row) for row in rows) if w is not None])


def _langflow_version(record: ProcessRecord, reads: Reads, reader: ProjectReader) -> str:
    """Langflow's version from its dist-info METADATA in the interpreter's site-packages, found and read as a
    Python project's installed frameworks are (``python.site_dirs``, ``python.read_site``); "" when not there."""
    from endpoint.scan.projects import python

    command = python.parse(record.cmdline, record.cwd)
    if command is None:
        command = python.Command("langflow")  # `langflow run` through a console script: its interpreter's prefix
    sites, _ = python.site_dirs(record, command, reads, reader)
    for site in sites:
        for name, version in python.read_site(site, reader, reads).dists:
            if name.lower() == "langflow" and VERSION.fullmatch(version):
                return version
    return ""


def _nodes(text: object) -> list[dict[str, object]]:
    try:
        flow = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        return []
    nodes = flow.get("nodes") if isinstance(flow, dict) else None
    if not isinstance(nodes, list):
        return []
    return [n["data"] for n in nodes[:1000] if isinstance(n, dict) and isinstance(n.get("data"), dict)]


def _flowise_flow(name: object, deployed: object, flow: object) -> Workflow | None:
    agents = 0
    providers: dict[str, None] = {}
    credentials: dict[str, None] = {}
    for data in _nodes(flow):
        component = data.get("name")
        if data.get("category") in FLOWISE_AGENT_CATEGORIES:
            agents += 1
        if isinstance(component, str) and component in FLOWISE_PROVIDERS:
            providers.setdefault(FLOWISE_PROVIDERS[component], None)
        params = data.get("inputParams")
        for param in params[:100] if isinstance(params, list) else ():
            credential = isinstance(param, dict) and param.get("type") == "credential"
            kinds = param.get("credentialNames") if credential else None
            for kind in kinds[:10] if isinstance(kinds, list) else ():
                if isinstance(kind, str) and kind.isidentifier():
                    credentials.setdefault(kind[:60], None)
    if not agents:
        return None
    return (str(name)[:200], bool(deployed), agents, tuple(providers), tuple(credentials))


def _langflow_flow(name: object, flow: object) -> Workflow | None:
    agents = 0
    providers: dict[str, None] = {}
    credentials: dict[str, None] = {}
    for data in _nodes(flow):
        component = data.get("type")
        if not isinstance(component, str):
            continue
        if "Agent" in component:
            agents += 1
        if component in LANGFLOW_PROVIDERS:
            providers.setdefault(LANGFLOW_PROVIDERS[component], None)
        node = data.get("node")
        template = node.get("template") if isinstance(node, dict) else None
        for field, spec in list(template.items())[:200] if isinstance(template, dict) else ():
            if not isinstance(spec, dict):
                continue
            if field == "agent_llm" and isinstance(spec.get("value"), str) and spec["value"] in LANGFLOW_PROVIDERS:
                providers.setdefault(LANGFLOW_PROVIDERS[spec["value"]], None)  # a choice among names, not a secret
            if spec.get("password") is True and isinstance(field, str) and field.isidentifier():
                credentials.setdefault(f"{component[:60]}.{field[:60]}", None)  # the field's name; its value unread
    if not agents:
        return None
    return (str(name)[:200], True, agents, tuple(providers), tuple(credentials))
