"""The planner's three series (request count, mean ISL, mean OSL), one predictor each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from planner_core.config import PlannerConfig
from planner_core.predictors.base import Predictor
from planner_core.predictors.factory import make_predictor
from planner_core.records import SERIES, LoadForecast, Observation


def epoch_s(when: datetime) -> float:
    """Epoch seconds; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class LoadPredictor:
    def __init__(self, config: PlannerConfig, **options: Any) -> None:
        self.config = config
        self.name = config.load_predictor
        self.series: dict[str, Predictor] = {s: make_predictor(self.name, config, **options) for s in SERIES}

    @property
    def has_data(self) -> bool:
        return all(p.has_data for p in self.series.values())

    def observe(self, obs: Observation) -> None:
        t = epoch_s(obs.window_end)
        for s, p in self.series.items():
            p.observe(getattr(obs, s), t)

    def observe_values(self, timestamp_s: float, num_req: float | None, isl: float | None, osl: float | None) -> None:
        for s, v in zip(SERIES, (num_req, isl, osl), strict=True):
            self.series[s].observe(v, timestamp_s)

    def predict(self) -> LoadForecast:
        f = {s: p.predict() for s, p in self.series.items()}
        return LoadForecast(
            num_req=f["num_req"].value,
            isl=f["isl"].value,
            osl=f["osl"].value,
            num_req_upper=f["num_req"].upper,
            isl_upper=f["isl"].upper,
            osl_upper=f["osl"].upper,
            predictor=self.name,
        )

    def get_state(self) -> dict[str, dict]:
        return {s: p.get_state() for s, p in self.series.items()}

    def load_state(self, states: dict[str, dict]) -> None:
        for s, p in self.series.items():
            if s in states:
                p.load_state(states[s])

    @classmethod
    def from_history(
        cls, config: PlannerConfig, history: dict[str, list[tuple[float, float | None]]], **options: Any
    ) -> LoadPredictor:
        """A predictor that has observed ``history`` ((timestamp_s, value) rows per series,
        oldest first, as the SQL store returns them). Equivalent to observing them one by one."""
        lp = cls(config, **options)
        for s, p in lp.series.items():
            p.observe_history(list(history.get(s, [])))
        return lp

    def warm_up_from_trace(self, path: str | Path, interval_s: float) -> int:
        """Feed a Mooncake-style JSONL trace, binned by ``interval_s``, before live data.
        Intervals are stamped so that the last one ends one interval before now's first live
        sample would (timestamps relative to the trace start). Returns the intervals fed."""
        from planner_core.traces import bin_trace, read_trace

        binned = bin_trace(read_trace(path), interval_s)
        ends = binned.end_timestamps()
        for i in range(len(binned)):
            self.observe_values(float(ends[i]), binned.num_req[i], binned.isl[i], binned.osl[i])
        return len(binned)
