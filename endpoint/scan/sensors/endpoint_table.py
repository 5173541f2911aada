"""Events to records: ``EndpointTable`` folds the parser's events into aggregated ``NetworkRecord``s
and keeps the address -> hostname map that DNS answers build."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from endpoint.scan.evidence import NetworkRecord, Via
from endpoint.scan.sensors.packet_events import DNS_QTYPES, RECENT_KEYS, DnsMessage, Event, Flow, HttpRequest

ProviderFor = Callable[[str, int], str | None]


class EndpointTable:
    """Folds events into ``NetworkRecord``s, one per (pid, or client address when there is no pid,
    host, port, via), with the first ``ts``, the ``last_ts`` and a ``count``.

    DNS answers fill ``names`` (address -> the name that was asked for), so that a connection known
    only by its address -- a ClientHello without SNI, a socket-table entry -- still gets a hostname.
    A DNS query makes a record (port 0: the port is not known yet); its answer only adds addresses.
    """

    def __init__(self, provider_for: ProviderFor | None = None, *, max_names: int = 16384) -> None:
        self._provider_for = provider_for
        self._providers: dict[tuple[str, int], str | None] = {}
        self._records: dict[tuple[object, ...], NetworkRecord] = {}
        self._queries: OrderedDict[tuple[str, int, int], NetworkRecord] = OrderedDict()
        self._tunnels: OrderedDict[tuple[str, int, str, int], tuple[str, int]] = OrderedDict()
        self._max_names = max_names
        self.names: OrderedDict[str, str] = OrderedDict()

    def provider(self, host: str, port: int) -> str | None:
        """The provider ``host:port`` belongs to, by the catalog function given (cached)."""
        if self._provider_for is None:
            return None
        key = (host, port)
        if key not in self._providers:
            if len(self._providers) > 8192:
                self._providers.clear()
            self._providers[key] = self._provider_for(host, port)
        return self._providers[key]

    def learn(self, address: str, name: str) -> None:
        """Remember that ``address`` was resolved from ``name`` (the most recent name wins)."""
        self.names.pop(address, None)
        self.names[address] = name
        if len(self.names) > self._max_names:
            self.names.popitem(last=False)

    def record_for(self, event: Event) -> NetworkRecord | None:
        """The un-aggregated record an event stands for (None when it names no host); learns from it."""
        if isinstance(event, DnsMessage):
            return self._dns_record(event)
        flow = event.flow
        if isinstance(event, HttpRequest):
            via: Via = "connect" if event.method == "CONNECT" else "http"
            if event.method == "CONNECT":
                self._remember_tunnel(flow, event.host, event.port)
            return self._make(event.host, event.port, via, event.ts, flow.src, flow.sport, flow.dst)
        port = self._tunnels.get((flow.src, flow.sport, flow.dst, flow.dport), (None, flow.dport))[1]
        if event.sni is not None:
            return self._make(event.sni, port, "sni", event.ts, flow.src, flow.sport, flow.dst)
        name = self.names.get(flow.dst)
        if name is not None:
            return self._make(name, port, "dns", event.ts, flow.src, flow.sport, flow.dst)
        return None

    def _remember_tunnel(self, flow: Flow, host: str, port: int) -> None:
        self._tunnels[(flow.src, flow.sport, flow.dst, flow.dport)] = (host, port)
        if len(self._tunnels) > 4096:
            self._tunnels.popitem(last=False)

    def _dns_record(self, msg: DnsMessage) -> NetworkRecord | None:
        client, cport = msg.client
        addresses = msg.addresses()
        for address in addresses:
            self.learn(address, msg.qname)
        key = (client, cport, msg.txid)
        if msg.response:
            asked = self._queries.pop(key, None)
            if asked is not None:
                if addresses and not asked.dst:
                    asked.dst = addresses[0]
                return None
        if msg.qtype not in DNS_QTYPES:
            return None
        rec = self._make(msg.qname, 0, "dns", msg.ts, client, cport, addresses[0] if addresses else "")
        if not msg.response:
            self._queries[key] = rec
            if len(self._queries) > RECENT_KEYS:
                self._queries.popitem(last=False)
        return rec

    def _make(
        self, host: str, port: int, via: Via, ts: float, src: str, sport: int, dst: str
    ) -> NetworkRecord:
        provider = self.provider(host, port)
        return NetworkRecord(host, port, via, ts, provider=provider, src=src, sport=sport, dst=dst)

    def merge(self, rec: NetworkRecord) -> NetworkRecord | None:
        """Add one observation; returns the aggregated record when it is the first of its key."""
        key: tuple[object, ...] = (rec.pid, rec.host, rec.port, rec.via)
        if rec.pid is None:
            key += (rec.src,)
        agg = self._records.get(key)
        if agg is None:
            rec.last_ts = max(rec.last_ts, rec.ts)
            self._records[key] = rec
            return rec
        agg.count += rec.count
        agg.ts = min(agg.ts, rec.ts)
        agg.last_ts = max(agg.last_ts, rec.last_ts, rec.ts)
        if not agg.dst:
            agg.dst = rec.dst
        return None

    def add(self, event: Event, *, pid: int | None = None, process: str = "") -> NetworkRecord | None:
        """``record_for`` then ``merge``, with the pid the caller attributed the event to."""
        rec = self.record_for(event)
        if rec is None:
            return None
        rec.pid, rec.process = pid, process
        return self.merge(rec)

    def records(self) -> list[NetworkRecord]:
        """All aggregated records, oldest first."""
        return sorted(self._records.values(), key=lambda r: (r.ts, r.host, r.port))
