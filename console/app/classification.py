"""The console's classification text: an agent's type with a one-line reason, and what each flag means.

The rules live in ``console.governance`` (``classify``, ``explain``: pure, shared with the collector);
this module adapts a sighting as the API returns it to them, and adds the collector's one-line reason
about this very sighting where it gave one ("calls openai, not declared").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from console import governance
from contract.scan import FLAG_NEXT_STEPS


def classify(sighting: Mapping[str, Any], now: float | None = None) -> tuple[str, str]:
    """(type, one-line reason) for a sighting as ``GET /agents/{device}/{id}`` returns it."""
    kind, reason = governance.classify(sighting, now=time.time() if now is None else now)
    return kind, reason[:1].upper() + reason[1:]


def explain(flag: str, sighting: Mapping[str, Any] | None = None) -> str:
    """What a flag means, followed by the collector's reason for this sighting when there is one."""
    text = governance.explain(flag)
    reasons = (sighting or {}).get("reasons")
    specific = reasons.get(flag) if isinstance(reasons, Mapping) else None
    return f"{text} ({specific})" if specific else text


def next_step(flag: str) -> str:
    """What to do about a flag, as a sentence ("Rotate …")."""
    step = FLAG_NEXT_STEPS.get(flag, "look at its evidence and decide")
    return step[:1].upper() + step[1:] + "."
