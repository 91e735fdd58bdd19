"""Prometheus metrics, in connector's own registry (served at ``GET /metrics``).

Labels carry component names, statuses and reason kinds only: never a secret or a payload.
The metrics counted once per webhook request (``LoopCounter``, ``LoopHistogram``) are plain
numbers read at scrape time: prometheus_client's take a lock per value, which cost 4.5 % of a
request's instructions.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class LoopCounter(Collector):
    """A counter with labels, counted from the event loop's thread only."""

    def __init__(self, name: str, documentation: str, labelnames: list[str], registry: CollectorRegistry):
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self._children: dict[tuple[str, ...], LoopCount] = {}
        registry.register(self)

    def labels(self, *values: str) -> LoopCount:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = LoopCount()
        return child

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class LoopCount:
    """One labelled value of a ``LoopCounter``."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram(Collector):
    """A histogram without labels, observed from the event loop's thread only."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry):
        self.name = name
        self.documentation = documentation
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)  # the last: above every bound
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, buckets = 0, []
        for bound, count in zip([*self.bounds, float("inf")], self.counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)

disable_created_metrics()  # type: ignore[no-untyped-call]  # a creation timestamp per series: noise, and one more series per counter
REGISTRY = CollectorRegistry(auto_describe=True)

RECEIVED = LoopCounter("connector_component_received_events", "Events a component took in.",
                       ["component"], registry=REGISTRY)
SENT = Counter("connector_component_sent_events", "Events a component delivered.",
               ["component"], registry=REGISTRY)
ERRORS = Counter("connector_component_errors", "Errors by component and reason kind.",
                 ["component", "reason"], registry=REGISTRY)
HTTP_REQUESTS = LoopCounter("connector_http_requests", "Webhook requests by source and status.",
                            ["source", "status"], registry=REGISTRY)
REFUSED = Counter("connector_refused_deliveries", "Deliveries a webhook source's path refused, by source and "
                  "status.", ["source", "status"], registry=REGISTRY)
CONNECTIONS_CLOSED = Counter("connector_connections_closed", "Connections the server closed on its own, by "
                             "listener and why (header_timeout, idle_timeout, max_connections).",
                             ["listener", "reason"], registry=REGISTRY)
ADMIN_REFUSED = Counter("connector_admin_refused_requests", "Admin requests refused for a missing or wrong token.",
                        registry=REGISTRY)
TEST_DELIVERIES = Counter("connector_test_deliveries", "Vendor test deliveries acknowledged, not forwarded.",
                          ["source"], registry=REGISTRY)
DEAD_LETTERS = Counter("connector_dead_letters", "Records dead-lettered, by sink and reason kind.",
                       ["sink", "reason"], registry=REGISTRY)
FILTERED = Counter("connector_filtered_records", "Records a mapper dropped on purpose (a filter the user "
                   "configured), by mapper and sink.", ["mapper", "sink"], registry=REGISTRY)
TAP_DROPPED = Counter("connector_tap_dropped_lines", "Tapped lines dropped for a slow tap client.",
                      registry=REGISTRY)
SINK_PAUSED = Gauge("connector_sink_paused", "1 while a sink is paused.", ["sink"], registry=REGISTRY)
SOURCE_ERRORS = Counter("connector_source_errors", "Failed fetches of a polling source, retried (429, 5xx, timeouts, "
                        "crashes).", ["source"], registry=REGISTRY)
SOURCE_PAUSED = Gauge("connector_source_paused", "1 while a polling source cannot fetch (a refused key).",
                      ["source"], registry=REGISTRY)
BUFFER_COMMITS = Counter("connector_buffer_commits", "Transactions that stored appended records.",
                         registry=REGISTRY)
ACK_SECONDS = LoopHistogram("connector_ack_seconds", "Webhook request in to 2xx out.",
                            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                            registry=REGISTRY)
SINK_REQUEST_SECONDS = Histogram("connector_sink_request_seconds", "Duration of a sink's requests.",
                                 ["sink"], registry=REGISTRY)
SOURCE_REQUEST_SECONDS = Histogram("connector_source_request_seconds", "Duration of a polling source's requests.",
                                   ["source"], registry=REGISTRY)
REQUEST_SECONDS = {"sink": SINK_REQUEST_SECONDS, "source": SOURCE_REQUEST_SECONDS}  # mappers make no requests


class BufferCollector(Collector):
    """``connector_buffer_records{sink}`` (lag) and ``connector_buffer_bytes``, read at scrape time."""

    def __init__(self, lag: Callable[[], dict[str, int]], stored_bytes: Callable[[], int]):
        self.lag = lag
        self.stored_bytes = stored_bytes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        records = GaugeMetricFamily("connector_buffer_records", "Records stored after a sink's cursor.",
                                    labels=["sink"])
        for sink, lag in self.lag().items():
            records.add_metric([sink], lag)
        yield records
        yield GaugeMetricFamily("connector_buffer_bytes", "Bytes of record bodies stored in the buffer.",
                                value=self.stored_bytes())


_buffer_collector: BufferCollector | None = None
_plugin_counters: dict[str, Counter] = {}
_PLUGIN_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ComponentMetrics:
    """``connector.ComponentMetrics`` for one component: its name is the label, its ``kind``
    (source, mapper, sink) says which metric its requests go to."""

    def __init__(self, component: str, kind: str = "sink"):
        self.component = component
        self.kind = kind
        histogram = REQUEST_SECONDS.get(kind)
        self._request_seconds = None if histogram is None else histogram.labels(component)

    def observe_request(self, seconds: float) -> None:
        if self._request_seconds is None:
            raise TypeError(f"{self.component}: a {self.kind} makes no requests (mappers do no I/O)")
        self._request_seconds.observe(seconds)

    def count(self, name: str, amount: float = 1.0) -> None:
        counter = _plugin_counters.get(name)
        if counter is None:
            if not _PLUGIN_METRIC_NAME.match(name):
                raise ValueError(f"metric name {name!r}: use lowercase letters, digits and underscores")
            counter = _plugin_counters[name] = Counter(f"connector_plugin_{name}", f"A plugin's count of {name}.",
                                                       ["component"], registry=REGISTRY)
        counter.labels(self.component).inc(amount)


def watch_buffer(lag: Callable[[], dict[str, int]], stored_bytes: Callable[[], int]) -> None:
    """Expose a buffer's lag and size (replacing the buffer watched before)."""
    global _buffer_collector
    if _buffer_collector is not None:
        REGISTRY.unregister(_buffer_collector)
    _buffer_collector = BufferCollector(lag, stored_bytes)
    REGISTRY.register(_buffer_collector)


def reason_label(reason: str) -> str:
    """A low-cardinality label for a free-text reason: its first words, snake_cased."""
    words = re.findall(r"[a-z]+", reason.lower())[:4]
    return "_".join(words) or "unknown"


def render(other_process: str | None = None) -> bytes:
    """The text exposition of every metric, with those of ``other_process`` (its exposition,
    from the delivery process) merged in: one family per name; where both have a sample with
    the same labels, this process's."""
    if not other_process:
        return generate_latest(REGISTRY)
    families = {family.name: family for family in REGISTRY.collect()}
    for family in text_string_to_metric_families(other_process):
        mine = families.setdefault(family.name, family)
        if mine is not family:
            seen = {(s.name, tuple(sorted(s.labels.items()))) for s in mine.samples}
            mine.samples.extend(s for s in family.samples if (s.name, tuple(sorted(s.labels.items()))) not in seen)
    return generate_latest(_Families(list(families.values())))


class _Families(Collector):
    """Metric families already collected, for ``generate_latest``."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
