"""What-if over stored history: the same settings reproduce the recorded decisions; others differ."""

from __future__ import annotations

from datetime import timedelta

import pytest

from planner_core.config import PlannerConfig
from planner_core.predictors import LoadPredictor
from planner_core.profiles import load_profile
from planner_core.runtime import open_cycle
from planner_core.sim.history import replay_history
from planner_core.store import Store
from tests.flow_support import EPOCH, SimWorld

INTERVAL_S = 60
RECORDED = PlannerConfig(
    environment="virtual", load_predictor="constant", adjustment_interval_s=INTERVAL_S, no_correction=True
)


def _record(url: str, cycles: int = 8) -> None:
    world = SimWorld(RECORDED, rate_per_s=6.0)
    with Store(url) as store:
        for k in range(cycles):
            end = world.window_end(k, INTERVAL_S)
            world.clock.set(end)
            result = open_cycle(RECORDED, "llama", store, ports=world.ports(RECORDED, "llama")).run(window_end=end)
            assert result.status in ("ok", "held"), result.error


def _whatif(url: str, config: PlannerConfig):
    with Store(url) as store:
        return replay_history(
            store,
            "dynamo/llama",
            EPOCH,
            EPOCH + timedelta(hours=1),
            config,
            load_profile(config.profile_dir()),
            LoadPredictor(config),
        )


def test_the_recorded_settings_reproduce_the_recorded_decisions(sqlite_url):
    _record(sqlite_url)
    report = _whatif(sqlite_url, RECORDED)
    assert report.intervals == 8
    for row in report.rows:
        assert (row["whatif_prefill"], row["whatif_decode"]) == (row["recorded_prefill"], row["recorded_decode"])
    assert report.whatif_gpu_hours == pytest.approx(report.recorded_gpu_hours)


def test_other_settings_decide_differently_and_say_what_it_costs(sqlite_url):
    _record(sqlite_url)
    tight = RECORDED.model_copy(update={"ttft_ms": 60.0, "itl_ms": 15.0, "max_gpu_budget": 32})
    report = _whatif(sqlite_url, tight)
    assert report.whatif_gpu_hours > report.recorded_gpu_hours
    assert report.summary()["needed_gpu_hours"] > 0
    assert any(
        (r["whatif_prefill"], r["whatif_decode"]) != (r["recorded_prefill"], r["recorded_decode"]) for r in report.rows
    )


def test_unknown_deployment_or_empty_window_names_the_field(sqlite_url):
    _record(sqlite_url, cycles=2)
    with Store(sqlite_url) as store, pytest.raises(ValueError, match="deployment"):
        replay_history(store, "nope", EPOCH, EPOCH, RECORDED, load_profile(RECORDED.profile_dir()), None)
    with Store(sqlite_url) as store, pytest.raises(ValueError, match="since/until"):
        replay_history(
            store,
            "llama",
            EPOCH - timedelta(days=2),
            EPOCH - timedelta(days=1),
            RECORDED,
            load_profile(RECORDED.profile_dir()),
            None,
        )


@pytest.mark.prefect
def test_replay_flows_attach_their_reports(prefect_harness, sqlite_url):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.replay import ReplayWorkload, replay
    from flows.replay import replay_history as replay_history_flow

    _record(sqlite_url)
    summary = replay_history_flow(
        deployment="llama", since=EPOCH, until=EPOCH + timedelta(hours=1), settings=RECORDED, db_url=sqlite_url
    )
    assert summary["intervals"] == 8 and summary["whatif_gpu_hours"] == pytest.approx(summary["recorded_gpu_hours"])
    rows = replay(workload=ReplayWorkload(duration_s=600, policies=["default", "static"]))
    assert [r["policy"] for r in rows] == ["default", "static"]
    with get_client(sync_client=True) as client:
        keys = {
            a.key
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(
                        any_=["replay-history-llama", "replay-azure-conv-2023", "replay-report-azure-conv-2023"]
                    )
                )
            )
        }
    assert keys == {"replay-history-llama", "replay-azure-conv-2023", "replay-report-azure-conv-2023"}
