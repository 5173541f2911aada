"""Pydantic adapters over the contract's TypedDicts: what the collector validates reports, enrollments and
registrations with, and what the JSON Schemas in ``contract/schema/`` are generated from.

The contract's TypedDicts are standard-library ones with ``contract.bounds`` markers (the endpoint imports
them without pydantic). pydantic needs ``typing_extensions.TypedDict`` on Python 3.11 and its own
constraints, so each TypedDict is read once here into a pydantic-ready twin of the same name and fields,
its markers turned into ``Field``/``StringConstraints``, unknown keys refused. The adapters answer plain
dicts of the contract's shapes, with the defaults filled in.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Annotated, Any, NotRequired, Union, get_args, get_origin, get_type_hints

import typing_extensions
from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, with_config

from contract import enroll, registration, report, scan
from contract.bounds import Default, Doc, Length, Pattern, Range, Strip

__all__ = [
    "DEVICE_STATUS", "ENROLL_REQUEST", "REGISTRATION_REQUEST", "REPORT", "SCAN",
    "BusinessProcess", "Config", "CredentialRef", "DeviceStatus", "Endpoint", "EnrollRequest", "EnrollResponse",
    "Evidence", "Item", "McpServer", "Name", "Process", "Project", "Purpose", "RegistrationRequest", "Report", "ReportAck",
    "ScanDocument", "SightingId", "checked", "report_json_schema", "scan_json_schema",
]

_twins: dict[type, Any] = {}
# called with a name and fields known only at run time, which mypy cannot follow
_typed_dict: Any = typing_extensions.TypedDict


def checked(hint: Any) -> Any:
    """``hint`` made pydantic-ready: a contract TypedDict's twin (made once), a constrained type's
    ``Annotated`` with pydantic's constraints."""
    if not typing_extensions.is_typeddict(hint):
        return _pydantic(hint)
    typed_dict: Any = hint
    twin = _twins.get(typed_dict)
    if twin is None:
        hints = get_type_hints(typed_dict, include_extras=True)
        fields = {name: _pydantic(field, optional=name in typed_dict.__optional_keys__)
                  for name, field in hints.items()}
        made = _typed_dict(typed_dict.__name__, fields)
        made.__doc__ = typed_dict.__doc__
        twin = _twins[typed_dict] = with_config(ConfigDict(extra="forbid"))(made)
    return twin


def _pydantic(hint: Any, *, optional: bool = False) -> Any:
    """``hint`` with every contract TypedDict replaced by its twin and every marker by pydantic's own."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (NotRequired, typing_extensions.NotRequired):
        return _pydantic(args[0], optional=True)
    if origin is Annotated:
        inner = _pydantic(args[0])
        metadata = [m for marker in hint.__metadata__ for m in _constraint(marker)]
        return NotRequired[Annotated[(inner, *metadata)]] if optional else Annotated[(inner, *metadata)]
    if optional:
        return NotRequired[_pydantic(hint)]
    if typing_extensions.is_typeddict(hint):
        return checked(hint)
    if origin is list:
        return list[_pydantic(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[_pydantic(args[0]), _pydantic(args[1])]  # type: ignore[misc]
    if origin in (Union, types.UnionType):
        return Union[tuple(_pydantic(a) for a in args)]  # noqa: UP007 - built from a tuple of types
    return hint


def _constraint(marker: object) -> list[Any]:
    if isinstance(marker, Range):
        return [Field(ge=marker.ge, le=marker.le)]
    if isinstance(marker, Length):
        return [Field(min_length=marker.min, max_length=marker.max)]
    if isinstance(marker, Pattern):
        return [Field(pattern=marker.regex)]
    if isinstance(marker, Strip):
        return [StringConstraints(strip_whitespace=True)]
    if isinstance(marker, Default):
        return [Field(default_factory=marker.factory) if marker.factory else Field(default=marker.value)]
    if isinstance(marker, Doc):
        return [Field(description=marker.text)]
    return [marker]


# The twins under the contract's names, for the collector's store models and routes: to mypy they are the
# contract's TypedDicts, to pydantic the twins.
if TYPE_CHECKING:
    from contract.enroll import EnrollRequest, EnrollResponse
    from contract.registration import BusinessProcess, Item, Name, Purpose, RegistrationRequest, SightingId
    from contract.report import DeviceStatus, Report, ReportAck
    from contract.scan import (
        Config,
        CredentialRef,
        Endpoint,
        Evidence,
        McpServer,
        Process,
        Project,
        ScanDocument,
    )
else:
    ScanDocument, Process, Config, McpServer, Endpoint, CredentialRef, Evidence, Project = (
        checked(t) for t in (scan.ScanDocument, scan.Process, scan.Config, scan.McpServer, scan.Endpoint,
                             scan.CredentialRef, scan.Evidence, scan.Project))
    Report, ReportAck, DeviceStatus = (checked(t) for t in (report.Report, report.ReportAck, report.DeviceStatus))
    EnrollRequest, EnrollResponse = checked(enroll.EnrollRequest), checked(enroll.EnrollResponse)
    RegistrationRequest = checked(registration.RegistrationRequest)
    SightingId, Name, Purpose, BusinessProcess, Item = (
        checked(t) for t in (registration.SightingId, registration.Name, registration.Purpose,
                             registration.BusinessProcess, registration.Item))

SCAN: TypeAdapter[scan.ScanDocument] = TypeAdapter(ScanDocument)
REPORT: TypeAdapter[report.Report] = TypeAdapter(Report)
DEVICE_STATUS: TypeAdapter[report.DeviceStatus] = TypeAdapter(DeviceStatus)
ENROLL_REQUEST: TypeAdapter[enroll.EnrollRequest] = TypeAdapter(EnrollRequest)
REGISTRATION_REQUEST: TypeAdapter[registration.RegistrationRequest] = TypeAdapter(RegistrationRequest)


def scan_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``agentroster.scan/1`` (``contract/schema/scan-1.json``)."""
    schema = SCAN.json_schema(by_alias=True)
    schema["$id"] = "https://agentroster.dev/schema/scan-1.json"
    schema["title"] = scan.SCAN_SCHEMA
    return schema


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``agentroster.report/1`` (``contract/schema/report-1.json``)."""
    schema = REPORT.json_schema(by_alias=True)
    schema["$id"] = "https://agentroster.dev/schema/report-1.json"
    schema["title"] = report.REPORT_SCHEMA
    return schema
