"""PromQL for the Dynamo frontend's metrics (pure: strings in, strings out).

Every query the planner sends is built here, so the label escaping lives in one place: a
model name such as ``a"}or vector(1)#`` stays inside its string literal and cannot change
the query.

We read the frontend's *raw* counters with a range query at the arrival resolution
(``sum by (model, dynamo_namespace) (dynamo_frontend_..._count{...})`` at step ``r``) instead
of Dynamo's ``increase(...[W])``: the differences of consecutive points are the per-step
arrival counts the sizing needs, their total is the exact request count (``increase``
extrapolates to the window edges), and a counter that goes down shows a reset, which
``increase`` would silently absorb. The means are Dynamo's formula on the same points:
``(sum_end - sum_start) / (count_end - count_start)``.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "dynamo_frontend_"
# Offered load: requests accepted by the frontend handler (Dynamo 1.6), and the fallback for
# frontends that predate it (counted when a request finishes).
REQUESTS_STARTED = PREFIX + "requests_started_total"
REQUESTS_FINISHED = PREFIX + "requests_total"
TTFT = PREFIX + "time_to_first_token_seconds"
ITL = PREFIX + "inter_token_latency_seconds"
REQUEST_DURATION = PREFIX + "request_duration_seconds"
ISL = PREFIX + "input_sequence_tokens"
OSL = PREFIX + "output_sequence_tokens"
# Requests between the HTTP handler and their first token (a gauge).
QUEUED_REQUESTS = PREFIX + "queued_requests"
# Requests accepted and not finished (a gauge).
INFLIGHT_REQUESTS = PREFIX + "inflight_requests"

MODEL_LABEL = "model"
NAMESPACE_LABEL = "dynamo_namespace"  # added by the scrape (Dynamo's PodMonitor), not the frontend
GROUP_BY = (MODEL_LABEL, NAMESPACE_LABEL)

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_label_value(value: str) -> str:
    """``value`` as the inside of a double-quoted PromQL string literal.

    Backslash, double quote and control characters are escaped (PromQL follows Go's string
    escapes), so nothing in ``value`` can end the literal."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def matchers(labels: dict[str, str]) -> str:
    """``{a="x",b="y"}`` with escaped values (sorted by label name; empty dict -> ``""``)."""
    if not labels:
        return ""
    for name in labels:
        if not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise ValueError(f"label name {name!r} is not a valid Prometheus label name")
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True)
class SeriesQuery:
    """One frontend series, summed over pods: ``sum by (model, dynamo_namespace) (metric{...})``.

    Kept structured (not only a string) so that the in-process scrape store of the replay
    can answer the same query without a PromQL parser."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    by: tuple[str, ...] = ()  # labels kept besides GROUP_BY (``le`` for histogram buckets)
    # The newest sample's time instead of the value:
    # ``max by (model, dynamo_namespace) (timestamp(metric{...}))`` (the stale-data guard's input).
    newest_sample: bool = False

    @property
    def group_by(self) -> tuple[str, ...]:
        return GROUP_BY + self.by

    @property
    def promql(self) -> str:
        by = ", ".join(self.group_by)
        selector = f"{self.metric}{matchers(dict(self.labels))}"
        if self.newest_sample:
            return f"max by ({by}) (timestamp({selector}))"
        return f"sum by ({by}) ({selector})"


def frontend_labels(model_name: str | None, namespace: str | None) -> tuple[tuple[str, str], ...]:
    """Label filters for one planned deployment (no model filter when ``model_name`` is unset)."""
    labels: dict[str, str] = {}
    if model_name:
        labels[MODEL_LABEL] = model_name
    if namespace:
        labels[NAMESPACE_LABEL] = namespace
    return tuple(sorted(labels.items()))


def series_query(
    metric: str, model_name: str | None, namespace: str | None, newest_sample: bool = False
) -> SeriesQuery:
    return SeriesQuery(metric, frontend_labels(model_name, namespace), newest_sample=newest_sample)


def bucket_query(base: str, model_name: str | None, namespace: str | None) -> SeriesQuery:
    """The ``_bucket`` series of a frontend histogram, one per ``le`` bound."""
    return SeriesQuery(base + "_bucket", frontend_labels(model_name, namespace), ("le",))


def histogram_queries(base: str, model_name: str | None, namespace: str | None) -> tuple[SeriesQuery, SeriesQuery]:
    """The ``_sum`` and ``_count`` series of a frontend histogram."""
    return series_query(base + "_sum", model_name, namespace), series_query(base + "_count", model_name, namespace)


def dynamo_mean_query(base: str, window_s: float, model_name: str | None, namespace: str | None) -> str:
    """Dynamo's own formula for a mean over the window, for reference and dashboards:
    ``sum by (...) (increase(base_sum{...}[W])) / sum by (...) (increase(base_count{...}[W]))``."""
    sel = matchers(dict(frontend_labels(model_name, namespace)))
    by = ", ".join(GROUP_BY)
    w = f"{int(window_s)}s" if float(window_s).is_integer() else f"{window_s}s"
    return f"sum by ({by}) (increase({base}_sum{sel}[{w}])) / sum by ({by}) (increase({base}_count{sel}[{w}]))"
