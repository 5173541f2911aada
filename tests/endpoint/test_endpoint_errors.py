"""One error root for the endpoint: every exception class the endpoint defines is an ``EndpointError``
with its own stable ``code``, and the ones callers catch as ``ValueError`` / ``OSError`` still are."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import endpoint
from endpoint.errors import EndpointError

# codes are part of the interface (logs, tests, messages): changing one is a decision, made here
EXPECTED = {
    "endpoint.scan.parsers.base.ConfigError": "config_unparsable",
    "endpoint.scan.safeio.ReadRefused": "read_refused",
    "endpoint.scan.sensors.bpf.FilterError": "capture_filter_rejected",
    "endpoint.scan.sensors.bpf.LibpcapMissing": "libpcap_missing",
    "endpoint.scan.sensors.pcap.PcapError": "pcap_unreadable",
    "endpoint.service.inventory.StateError": "bad_state",
    "endpoint.service.localproto.DaemonNotListening": "daemon_not_listening",
    "endpoint.service.localproto.LocalSocketError": "local_socket_unavailable",
    "endpoint.service.reporter.CollectorUnreachable": "collector_unreachable",
    "endpoint.service.reporter.DeviceKeyRejected": "device_key_rejected",
    "endpoint.service.reporter.EnrollmentRejected": "enrollment_rejected",
    "endpoint.service.reporter.ReportRefused": "report_refused",
    "endpoint.service.reporter.ReporterError": "report_failed",
    "endpoint.service.inventory.SpoolFull": "spool_full",
    "endpoint.service.settings.SettingsError": "bad_setting",
    "endpoint.service.registration.errors.RegisterError": "registration_failed",
    "endpoint.service.registration.errors.RegistrationRefused": "registration_refused",
    "endpoint.scan.sensors._capture_common.CaptureUnavailable": "capture_unavailable",
}


def _endpoint_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(endpoint.__path__, "endpoint."):
        module = importlib.import_module(info.name)
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_endpoint_error_has_the_one_root_and_its_own_stable_code():
    found = _endpoint_exceptions()
    assert set(EXPECTED) <= set(found)
    for name, cls in found.items():
        assert issubclass(cls, EndpointError), f"{name} is not an EndpointError"
    codes = {name: cls.code for name, cls in found.items() if issubclass(cls, EndpointError)}
    assert {n: codes[n] for n in EXPECTED} == EXPECTED
    named = [c for n, c in codes.items() if n != "endpoint.errors.EndpointError"]
    assert "endpoint_error" not in named and len(set(named)) == len(named), "each class its own code"
    assert all(c.isidentifier() and c == c.lower() for c in codes.values())


def test_errors_callers_catch_by_builtin_type_still_are_that_type():
    from endpoint.scan.parsers.base import ConfigError
    from endpoint.scan.safeio import ReadRefused
    from endpoint.scan.sensors.bpf import FilterError, LibpcapMissing
    from endpoint.scan.sensors.pcap import PcapError
    from endpoint.service.settings import SettingsError

    assert all(issubclass(c, ValueError) for c in (ConfigError, FilterError, PcapError, SettingsError))
    assert issubclass(LibpcapMissing, OSError)
    refused = ReadRefused("not_found", "gone")  # a finer code per instance, the class's otherwise
    assert refused.code == "not_found" and ReadRefused.code == "read_refused"


def test_report_refused_is_the_endpoints_name_and_report_rejected_the_collectors():
    import endpoint.service.reporter as reporter

    assert not hasattr(reporter, "ReportRejected")
    assert issubclass(reporter.ReportRefused, reporter.ReporterError)
