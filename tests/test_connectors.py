"""The connector interface: empty targets, --no-operation, the rollout gate, the simulated cluster."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from planner_core.config import COMPONENT_NAMES, Backend, RolloutBehaviour, config_from_env, make_config
from planner_core.connectors import EmptyTargetsError, NoOperationConnector, component_targets, gate_rollout
from planner_core.connectors.simulated import SimulatedClusterConnector
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim.cluster import ClusterSimulator

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Rolling:
    """A connector whose last change is still rolling out (or not)."""

    name = "fake"

    def __init__(self, current: Replicas, reason: str | None) -> None:
        self.current, self.reason = current, reason

    def current_replicas(self) -> Replicas:
        return self.current

    def rolling_out(self) -> str | None:
        return self.reason


def test_component_targets_maps_pools_and_refuses_empty():
    names = {"prefill": "VllmPrefillWorker", "decode": "VllmDecodeWorker"}
    assert component_targets(Replicas(2, 3), names) == {"VllmPrefillWorker": 2, "VllmDecodeWorker": 3}
    assert component_targets(Replicas(None, 3), names) == {"VllmDecodeWorker": 3}
    with pytest.raises(EmptyTargetsError, match="no target replicas"):
        component_targets(Replicas(None, None), names)
    with pytest.raises(ValueError, match="prefill target must be >= 0"):
        component_targets(Replicas(-1, 3), names)


@pytest.mark.parametrize(
    ("behaviour", "reason", "targets", "expected", "why"),
    [
        (RolloutBehaviour.APPLY, "decode: 1 starting", Replicas(1, 1), Replicas(1, 1), None),
        (RolloutBehaviour.SKIP, None, Replicas(1, 1), Replicas(1, 1), None),
        (RolloutBehaviour.SKIP, "decode: 1 starting", Replicas(5, 5), None, "skipped"),
        (RolloutBehaviour.SCALE_UP, "decode: 1 starting", Replicas(5, 5), Replicas(5, 5), None),
        # prefill would shrink: it keeps its target, decode grows
        (RolloutBehaviour.SCALE_UP, "decode: 1 starting", Replicas(1, 5), Replicas(2, 5), "held prefill 2->1"),
        # everything would shrink: nothing to apply
        (RolloutBehaviour.SCALE_UP, "decode: 1 starting", Replicas(1, 1), None, "held prefill 2->1"),
        # Dynamo 1.6's rule: growth waits, shrinking goes through
        (RolloutBehaviour.SCALE_DOWN, "decode: 1 starting", Replicas(1, 5), Replicas(1, 3), "held decode 3->5"),
        (RolloutBehaviour.SCALE_DOWN, "decode: 1 starting", Replicas(2, 5), None, "held decode 3->5"),
    ],
)
def test_gate_rollout(behaviour, reason, targets, expected, why):
    applied, note = gate_rollout(_Rolling(Replicas(2, 3), reason), targets, behaviour)  # type: ignore[arg-type]
    assert applied == expected
    assert (note is None) if why is None else (why in (note or ""))


def test_dynamo_policy_always_skips_during_rollout():
    assert make_config(policy="dynamo", while_rolling_out="apply").rollout_behaviour() == RolloutBehaviour.SKIP
    assert make_config(while_rolling_out="apply").rollout_behaviour() == RolloutBehaviour.APPLY


def test_no_operation_records_and_scales_nothing():
    sim = _sim()
    inner = SimulatedClusterConnector(sim)
    noop = NoOperationConnector(inner)
    outcome = noop.apply(Replicas(4, 4), 7, NOW)
    assert outcome.outcome == "dry_run" and outcome.requested == Replicas(4, 4)
    assert noop.requests == [(NOW, Replicas(4, 4))]
    assert sim.replicas()["prefill"]["target"] == 1  # untouched
    assert noop.current_replicas() == Replicas(1, 1)  # reads go to the real connector
    with pytest.raises(EmptyTargetsError):
        noop.apply(Replicas(None, None), None, NOW)
    alone = NoOperationConnector(current=Replicas(1, 1))
    alone.apply(Replicas(None, 3), None, NOW)
    assert alone.current_replicas() == Replicas(1, 3)


def test_simulated_connector_reports_rollout_until_workers_are_ready():
    sim = _sim(startup_s=30.0)
    conn = SimulatedClusterConnector(sim)
    assert conn.rolling_out() is None
    assert conn.apply(Replicas(1, 3), None, NOW).outcome == "applied"
    assert conn.rolling_out() == "decode: 2 starting"
    assert conn.current_replicas() == Replicas(1, 3) and conn.ready_replicas() == Replicas(1, 1)
    sim.advance_to(31.0)
    assert conn.rolling_out() is None and conn.ready_replicas() == Replicas(1, 3)
    assert conn.apply(Replicas(1, 3), None, NOW).outcome == "unchanged"
    info = conn.validate()
    assert (info.prefill_engine_num_gpu, info.decode_engine_num_gpu) == (1, 1)


def test_component_names_settings_override_the_backend():
    assert make_config(backend="sglang").component_names() == COMPONENT_NAMES[Backend.SGLANG]
    cfg = make_config(prefill_component_name="MyPrefill")
    assert cfg.component_names() == ("MyPrefill", "VllmDecodeWorker")
    env = config_from_env(
        {"DYN_PARENT_DGD_K8S_NAME": "llama", "SCALING_CHECK_INTERVAL": "2", "SCALING_MAX_WAIT_TIME": "60"}
    )
    assert (env.dgd_name, env.scaling_check_interval_s, env.scaling_max_wait_time_s) == ("llama", 2.0, 60.0)
    assert make_config().scaling_check_interval_s == 10 and make_config().scaling_max_wait_time_s == 1800


def test_workload_setting_is_checked():
    from planner_core.config import ConfigError

    assert make_config(prefill_workload="deployment/p").prefill_workload == "deployment/p"
    with pytest.raises(ConfigError, match="prefill_workload: 'p' is not KIND/NAME"):
        make_config(prefill_workload="p")


def _sim(startup_s: float = 0.0) -> ClusterSimulator:
    from planner_core.config import BUNDLED_PROFILE_DIR

    empty = np.zeros(0)
    return ClusterSimulator(
        load_profile(BUNDLED_PROFILE_DIR), empty, empty, empty, initial=Replicas(1, 1), startup_s=startup_s
    )
