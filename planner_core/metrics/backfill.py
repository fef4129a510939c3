"""The planner's metrics history as OpenMetrics, for ``promtool tsdb create-blocks-from openmetrics``.

``sla-planner exporter`` serves what the store says *now*, so Prometheus only has the planner's
series from the moment it started scraping. The store holds every cycle: this module renders,
for every finished run, the families a scrape right after that run would have read, stamped with
the run's end, so that a new Prometheus (or the dashboard preview) shows the whole history.

Each run contributes only its own deployment's series (two deployments' runs never write one
series twice at one timestamp). Cost: one store snapshot per run, so back-fill a window
(``since``/``until``) rather than years at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TextIO

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest
from sqlalchemy import select

from planner_core.metrics.planner_metrics import render
from planner_core.metrics.store_exporter import RUN, StoreCollector
from planner_core.store.rows import aware


def finished_runs(
    store: Any, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[int, int, datetime]]:
    """(run id, deployment id, end) of every finished run that ended in [since, until), by id."""
    q = select(RUN.c.id, RUN.c.deployment_id, RUN.c.ended_at).where(
        RUN.c.status != "running", RUN.c.ended_at.is_not(None)
    )
    if since is not None:
        q = q.where(RUN.c.ended_at >= aware(since, "since"))
    if until is not None:
        q = q.where(RUN.c.ended_at < aware(until, "until"))
    with store.engine.connect() as conn:
        return [(int(r), int(d), e) for r, d, e in conn.execute(q.order_by(RUN.c.id))]


def history_families(store: Any, since: datetime | None = None, until: datetime | None = None) -> list[Metric]:
    """Every ``planner_*`` family with one sample per series per finished run, timestamped."""
    collector = StoreCollector(store)
    families: dict[str, Metric] = {}
    for run_id, deployment_id, ended in finished_runs(store, since, until):
        stamp = ended.timestamp()
        for metric in render(collector.snapshot(upto_run_id=run_id, deployment_id=deployment_id)):
            family = families.setdefault(metric.name, Metric(metric.name, metric.documentation, metric.type))
            family.samples.extend(sample._replace(timestamp=stamp) for sample in metric.samples)
    for family in families.values():
        # OpenMetrics: a series' samples together, oldest first
        family.samples.sort(key=lambda s: (s.name, sorted(s.labels.items()), s.timestamp))
    return list(families.values())


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def write_openmetrics(store: Any, out: TextIO, since: datetime | None = None, until: datetime | None = None) -> int:
    """Write the history to ``out`` in OpenMetrics text (ends with ``# EOF``); the number of samples."""
    families = history_families(store, since, until)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    out.write(generate_latest(registry).decode())
    return sum(len(f.samples) for f in families)
