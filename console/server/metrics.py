"""Prometheus metrics in the text exposition format, without a client library.

Counters and the latency histogram live in this process: with ``--workers N`` each worker answers
with its own (the ``pid`` label tells them apart; sum them in the query). The device and sighting
gauges come from the database, so every worker reports the same fleet.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.reports: dict[str, int] = defaultdict(int)  # result -> count
        self.latency: dict[tuple[str, str], list[int]] = {}  # (method, route) -> counts per bucket (+Inf last)
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)

    def count_report(self, result: str) -> None:
        self.reports[result] += 1

    def observe(self, method: str, route: str, seconds: float) -> None:
        key = (method, route)
        counts = self.latency.get(key)
        if counts is None:
            counts = self.latency[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[key] += seconds

    def render(self, *, devices: int, stale_devices: int, sightings: int) -> str:
        pid = f'pid="{os.getpid()}"'
        lines = [
            "# HELP agentroster_reports_total Device reports received, by result.",
            "# TYPE agentroster_reports_total counter",
            *(f'agentroster_reports_total{{result="{r}",{pid}}} {n}' for r, n in sorted(self.reports.items())),
            "# HELP agentroster_devices Enrolled devices (not revoked).",
            "# TYPE agentroster_devices gauge",
            f"agentroster_devices {devices}",
            "# HELP agentroster_devices_stale Enrolled devices not seen within the stale window.",
            "# TYPE agentroster_devices_stale gauge",
            f"agentroster_devices_stale {stale_devices}",
            "# HELP agentroster_sightings Sightings currently present (not gone).",
            "# TYPE agentroster_sightings gauge",
            f"agentroster_sightings {sightings}",
            "# HELP agentroster_http_request_duration_seconds Request latency, by method and route.",
            "# TYPE agentroster_http_request_duration_seconds histogram",
        ]
        for (method, route), counts in sorted(self.latency.items()):
            labels = f'method="{method}",route="{route}",{pid}'
            total = 0
            for bound, n in zip((*BUCKETS, "+Inf"), counts, strict=True):
                total += n
                lines.append(f'agentroster_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {total}')
            lines.append(f"agentroster_http_request_duration_seconds_sum{{{labels}}} "
                         f"{self.latency_sum[(method, route)]:.6f}")
            lines.append(f"agentroster_http_request_duration_seconds_count{{{labels}}} {total}")
        return "\n".join(lines) + "\n"


class LatencyMiddleware:
    """Times every HTTP request, labelled by its route template (not the raw path: ids would explode it)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                route = scope.get("route")
                self.metrics.observe(scope["method"], getattr(route, "path", "unmatched"),
                                     time.perf_counter() - start)

        await self.app(scope, receive, timed_send)
