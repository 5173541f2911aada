"""The plain runtime form of the signatures: it mirrors the schema, and a warm start needs no pydantic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from signatures import runtime, schema
from signatures.loader import CATALOG_PATH, shipped_packs
from signatures.validate import read_all

PAIRS = [(runtime.ProcessMatcher, schema.ProcessMatcher), (runtime.FileMatcher, schema.FileMatcher),
         (runtime.Packages, schema.Packages), (runtime.NetworkMatcher, schema.NetworkMatcher),
         (runtime.SettingMarker, schema.SettingMarker), (runtime.Autonomy, schema.Autonomy),
         (runtime.Case, schema.Case), (runtime.Cases, schema.Cases), (runtime.Risk, schema.Risk),
         (runtime.Signature, schema.Signature), (runtime.Provider, schema.Provider),
         (runtime.ValueCases, schema.ValueCases), (runtime.CredentialKind, schema.CredentialKind)]
REPO = Path(__file__).parents[2]


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {k: _plain(v) for k, v in zip(value._fields, value, strict=True)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize(("plain", "model"), PAIRS, ids=[p.__name__ for p, _ in PAIRS])
def test_runtime_fields_and_defaults_mirror_the_schema(plain: type, model: type[BaseModel]) -> None:
    assert list(plain._fields) == list(model.model_fields)
    for name, info in model.model_fields.items():
        if not info.is_required():
            assert _plain(plain._field_defaults[name]) == _plain(info.get_default(call_default_factory=True)), name


def test_shipped_packs_build_the_same_from_a_full_or_a_trimmed_dump() -> None:
    packs, catalog, problems = read_all(shipped_packs(), CATALOG_PATH)
    assert problems == [] and catalog is not None
    full = runtime.build([p.model_dump(mode="json") for p, _ in packs], catalog[0].model_dump(mode="json"))
    trimmed = runtime.build([p.model_dump(mode="json", exclude_defaults=True) for p, _ in packs],
                            catalog[0].model_dump(mode="json", exclude_defaults=True))
    assert full == trimmed
    assert _plain(full[0]) == _plain([s for p, _ in packs for s in p.signatures])
    assert _plain(full[1]) == _plain(catalog[0].providers) and _plain(full[2]) == _plain(catalog[0].credentials)


_WARM = """
import json, sys
import signatures
lib = signatures.load()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core", "yaml"))
print(json.dumps({"signatures": len(lib.signatures), "heavy": heavy}))
"""


@pytest.mark.timeout(120)
def test_a_warm_start_imports_neither_pydantic_nor_yaml(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTROSTER_CACHE_DIR": str(tmp_path / "cache")}
    runs = [json.loads(subprocess.run([sys.executable, "-c", _WARM], env=env, cwd=REPO, capture_output=True,
                                      text=True, check=True, timeout=60).stdout) for _ in range(2)]
    cold, warm = runs
    assert cold["heavy"] != [] and warm["heavy"] == []
    assert warm["signatures"] == cold["signatures"] > 50
