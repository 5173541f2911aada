"""Environment variables that pick a model, a provider or a provider's base URL.

The same names turn up in .env files, in Claude Code's ``env`` setting, at the top of Goose's
config.yaml and in aider's ``set-env``, so one table serves them all. Values of any other variable
are never looked at here (secrets are the credential scanner's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from endpoint.scan.parsers.findings import Findings

BASE_URL_VARS = frozenset({
    "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_HOST",  # OpenAI SDKs, litellm/aider, Goose
    "AIDER_OPENAI_API_BASE",
    "ANTHROPIC_BASE_URL", "ANTHROPIC_HOST",  # Anthropic SDKs and Claude Code, Goose
    "ANTHROPIC_BEDROCK_BASE_URL", "ANTHROPIC_VERTEX_BASE_URL",  # Claude Code through a gateway
    "AZURE_OPENAI_ENDPOINT",
    "GOOGLE_GEMINI_BASE_URL",  # Gemini CLI
    "OLLAMA_HOST", "OLLAMA_API_BASE", "OLLAMA_BASE_URL",  # Ollama clients, litellm/aider
})  # fmt: skip

MODEL_VARS = frozenset({
    "ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL",
    "OPENAI_MODEL", "GEMINI_MODEL",
    "GOOSE_MODEL", "GOOSE_LEAD_MODEL", "GOOSE_PLANNER_MODEL",
    "AIDER_MODEL", "AIDER_WEAK_MODEL", "AIDER_EDITOR_MODEL",
})  # fmt: skip

PROVIDER_VARS = frozenset({"GOOSE_PROVIDER", "GOOSE_LEAD_PROVIDER", "GOOSE_PLANNER_PROVIDER"})

# Switches that route a client to another provider when set to a true value.
PROVIDER_SWITCHES = {"CLAUDE_CODE_USE_BEDROCK": "bedrock", "CLAUDE_CODE_USE_VERTEX": "vertex"}
TRUTHY = frozenset({"1", "true", "yes", "on"})


def note_env(env: Mapping[Any, Any], out: Findings) -> None:
    """Collect models, providers and base URLs from variables set in ``env``."""
    for name, value in env.items():
        if not isinstance(name, str):
            continue
        if name in BASE_URL_VARS:
            out.base_url(value)
        elif name in MODEL_VARS:
            out.model(value)
        elif name in PROVIDER_VARS:
            out.provider(value)
        elif name in PROVIDER_SWITCHES and str(value).strip().lower() in TRUTHY:
            out.provider(PROVIDER_SWITCHES[name])


def extract_dotenv(document: dict[str, Any], out: Findings) -> None:
    """The ``dotenv`` dialect: a .env file's variables."""
    note_env(document, out)
