"""The wire contract between the endpoint and the collector: the scan document, report framing and acks,
enrollment and registration, as TypedDicts that import nothing but the standard library.

Both sides import this package and it imports neither. The endpoint builds plain dicts of these shapes
(cheap to import on every machine, checked by mypy); the collector validates them with the pydantic
adapters in ``contract.validation``, from which the JSON Schemas in ``contract/schema/`` are generated.
"""

from __future__ import annotations

__version__ = "0.1.0"
