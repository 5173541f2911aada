"""The console's client answers the collector's own public models (console/server/models.py), not copies
of them: a field the collector adds or renames reaches the console by itself, and an answer that is not
in the collector's shape is a ProtocolError naming where."""

from __future__ import annotations

import httpx
import pytest

from console.app import api
from console.server import models as public

RESULTS = {api.Agent: public.SightingPublic, api.AgentPage: public.SightingsPublic,
           api.AgentDetail: public.SightingDetail, api.Device: public.DevicePublic,
           api.DevicePage: public.DevicesPublic, api.Overview: public.OverviewPublic,
           api.Policy: public.PolicyPublic, api.PolicyEdit: public.PolicyUpdate,
           api.Registration: public.RegistrationPublic, api.RegistrationPage: public.RegistrationsPublic,
           api.HistoryEntry: public.SightingHistoryPublic, api.TriageAction: public.TriageActionPublic,
           api.TriageResult: public.TriageApplied}


@pytest.mark.parametrize(("result", "model"), RESULTS.items(), ids=lambda c: getattr(c, "__name__", ""))
def test_each_result_is_the_collectors_public_model(result: type, model: type) -> None:
    assert issubclass(result, model)
    assert set(result.model_fields) == set(model.model_fields)  # type: ignore[attr-defined]


def test_an_answer_out_of_shape_is_a_protocol_error_naming_where() -> None:
    def answers(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": "d1", "hostname": "h"}], "count": 1})

    client = api.Client("http://127.0.0.1:9", "FAKE-viewer-token", transport=httpx.MockTransport(answers))
    with pytest.raises(api.ProtocolError, match=r"device list .* at data\.0\.") as caught:
        client.devices()
    assert caught.value.code == "protocol_error"
