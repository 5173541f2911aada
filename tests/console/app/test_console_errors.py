"""The console's one error tree: every error a ``ConsoleError`` with its own stable ``code``, and what
httpx raises mapped to the most specific kind."""

from __future__ import annotations

import inspect
import socket

import httpx
import pytest

from console.app import api, errors


def _error_classes() -> list[type[errors.ConsoleError]]:
    found = {cls for module in (api, errors) for _, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, BaseException) and cls.__module__.startswith("console.")}
    return sorted(found, key=lambda cls: cls.__name__)


def test_every_console_error_has_the_one_root_and_a_code_of_its_own() -> None:
    classes = _error_classes()
    assert {c.__name__ for c in classes} >= {"ConsoleError", "ApiError", "ServerUnreachable", "TimedOut",
                                             "ExportFailed", "EmbeddedCollectorFailed", "UnexpectedError"}
    assert all(issubclass(c, errors.ConsoleError) for c in classes)
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes) and all(code.isidentifier() and code.islower() for code in codes)


def test_a_time_out_is_its_own_kind_of_unreachable() -> None:
    def never_answers(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    client = api.Client("http://127.0.0.1:9", "FAKE-viewer-token", transport=httpx.MockTransport(never_answers))
    with pytest.raises(api.TimedOut) as caught:
        client.overview()
    assert isinstance(caught.value, api.ServerUnreachable) and caught.value.code == "timed_out"
    with pytest.raises(api.TimedOut):
        client.health()


def test_a_refused_connection_is_unreachable_and_an_answer_keeps_its_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(api.ServerUnreachable) as caught:
        api.Client(f"http://127.0.0.1:{port}", "FAKE-viewer-token", timeout=5).overview()
    assert type(caught.value) is api.ServerUnreachable and caught.value.code == "server_unreachable"

    def refuses(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"detail": {"reason": "admin_role_required"}})

    client = api.Client("http://127.0.0.1:9", "FAKE-viewer-token", transport=httpx.MockTransport(refuses))
    with pytest.raises(api.Forbidden) as refused:
        client.overview()
    assert (refused.value.code, refused.value.reason, refused.value.status) == ("forbidden", "admin_role_required", 403)
