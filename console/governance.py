"""Governance: whether a sighting is governed and which collector flags it carries, as pure functions.

The collector owns five flags (``unregistered``, ``pending``, ``drift``, ``unsanctioned_provider``,
``personal_credential``); the endpoint owns the rest. Until registrations exist, a sighting is
governed only when the org policy sanctions its signature. No I/O here: the collector calls
``assess`` at ingest and again for every sighting when the policy changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: flags that only the collector decides; any that a device sends are dropped and recomputed
COLLECTOR_FLAGS = frozenset({"unregistered", "pending", "drift", "unsanctioned_provider", "personal_credential"})


@dataclass(frozen=True, slots=True)
class Policy:
    """The org's policy: sanctioned signatures and providers, and its corporate credential fingerprints.

    An empty allow-list sanctions nothing: a new collector flags every provider and every key until
    the org says which ones are its own.
    """

    sanctioned_signatures: frozenset[str] = frozenset()
    sanctioned_providers: frozenset[str] = frozenset()
    corporate_fingerprints: frozenset[str] = frozenset()

    @classmethod
    def of(cls, signatures: Iterable[str] = (), providers: Iterable[str] = (),
           fingerprints: Iterable[str] = ()) -> Policy:
        return cls(frozenset(signatures), frozenset(providers), frozenset(fingerprints))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the collector concludes about one sighting."""

    governed: bool
    flags: tuple[str, ...]  # every flag, the endpoint's and the collector's, sorted


def assess(signature: str | None, providers: Iterable[str], fingerprints: Iterable[str],
           device_flags: Iterable[str], policy: Policy) -> Verdict:
    """Governed or not, with the sighting's full flag list (collector flags recomputed)."""
    flags = {f for f in device_flags if f not in COLLECTOR_FLAGS}
    sanctioned = signature is not None and signature in policy.sanctioned_signatures
    if not sanctioned:
        flags.add("unregistered")
    if any(p not in policy.sanctioned_providers for p in providers):
        flags.add("unsanctioned_provider")
    if any(f not in policy.corporate_fingerprints for f in fingerprints):
        flags.add("personal_credential")
    return Verdict(governed=sanctioned, flags=tuple(sorted(flags)))


def providers_of(endpoints: Iterable[dict[str, object]]) -> list[str]:
    """The distinct LLM providers a sighting's endpoints reach, sorted."""
    return sorted({p for e in endpoints if isinstance(p := e.get("provider"), str) and p})


def fingerprints_of(credentials: Iterable[dict[str, object]]) -> list[str]:
    """The distinct credential fingerprints a sighting uses, sorted."""
    return sorted({f for c in credentials if isinstance(f := c.get("fingerprint"), str) and f})
