"""The virtual connector: for environments the planner does not control.

Each decision becomes a pending scaling request in the SQL store
(:mod:`planner_core.store.scaling_requests`); an outside system carries it out and
acknowledges it (``sla-planner virtual ack``, or :func:`~planner_core.store.scaling_requests.acknowledge`).
``apply`` returns at once with outcome ``requested``; a daemon thread checks every
``SCALING_CHECK_INTERVAL`` seconds (default 10) until the request is resolved or
``SCALING_MAX_WAIT_TIME`` (default 1800) has passed, and records the outcome on the decision's
scaling action. The next cycle is never blocked: while a request is pending, ``rolling_out``
says so and the cycle's ``--while-rolling-out`` rule decides; a new request supersedes the
pending one. A planner process that exits before the answer (a Prefect flow run does) loses
only its thread: the next cycle reads the same rows and times the request out if it is due.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from planner_core.config import PlannerConfig
from planner_core.connectors.base import component_targets
from planner_core.ports import DeploymentInfo
from planner_core.records import Replicas, ScalingOutcome
from planner_core.store.scaling_requests import (
    ACKNOWLEDGED,
    PENDING,
    REQUESTED,
    ScalingRequest,
    expire_requests,
    get_request,
    latest_request,
    submit_request,
    sync_action_outcome,
)

log = logging.getLogger("sla_planner.connectors.virtual")


class VirtualConnector:
    """Connector whose cluster is whatever acknowledges the requests in the store."""

    name = "virtual"

    def __init__(
        self,
        config: PlannerConfig,
        store: object,
        deployment_id: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        wait: Callable[[threading.Event, float], bool] = lambda event, s: event.wait(s),
    ) -> None:
        self.config = config
        self.store = store
        self.deployment_id = deployment_id
        self.check_interval_s = config.scaling_check_interval_s
        self.max_wait_s = config.scaling_max_wait_time_s
        self._now = now
        self._wait = wait
        self.requested_by = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.outcomes: list[ScalingRequest] = []  # resolved requests this process saw, oldest first

    # -- reads --------------------------------------------------------------------------------
    def _settle(self) -> ScalingRequest | None:
        """Time out an overdue request, then the newest request of the deployment."""
        for expired in expire_requests(self.store, self.deployment_id, self._now(), self.max_wait_s):
            log.warning("scaling request %s timed out: %s", expired.id, expired.note)
        latest = latest_request(self.store, self.deployment_id)
        if latest is not None and latest.status != PENDING:
            sync_action_outcome(self.store, latest)
        return latest

    def validate(self) -> DeploymentInfo:
        return DeploymentInfo(
            self.config.model_name, self.config.prefill_engine_num_gpu, self.config.decode_engine_num_gpu
        )

    def current_replicas(self) -> Replicas:
        """The targets of the pending request, else what the outside system last said it runs."""
        latest = self._settle()
        if latest is not None and latest.status == PENDING:
            return latest.targets
        return self.ready_replicas()

    def ready_replicas(self) -> Replicas:
        acked = latest_request(self.store, self.deployment_id, ACKNOWLEDGED)
        return acked.running if acked is not None else Replicas(None, None)

    def rolling_out(self) -> str | None:
        latest = self._settle()
        if latest is None or latest.status != PENDING:
            return None
        waited = (self._now() - latest.requested_at).total_seconds()
        return f"scaling request {latest.id} not acknowledged yet (waited {waited:.0f} s of {self.max_wait_s:g})"

    # -- the request ----------------------------------------------------------------------------
    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        component_targets(targets, {"prefill": "prefill", "decode": "decode"})  # refuses an empty request
        request = submit_request(self.store, self.deployment_id, targets, decision_id, requested_at, self.requested_by)
        log.info(
            "scaling request %s: prefill %s, decode %s (decision %s); waiting for an acknowledgement",
            request.id,
            targets.prefill,
            targets.decode,
            decision_id,
        )
        self._start_poller(request.id)
        return ScalingOutcome(connector=self.name, requested=targets, outcome=REQUESTED, requested_at=requested_at)

    def poll(self, request_id: int) -> ScalingRequest | None:
        """One check of a request: times it out when due, records a resolution; None if unknown."""
        self._settle()
        request = get_request(self.store, request_id)
        if request is not None and request.status != PENDING:
            sync_action_outcome(self.store, request)
        return request

    def _start_poller(self, request_id: int) -> None:
        self.close()  # the previous request is superseded: its thread has nothing left to wait for
        self._stop = threading.Event()
        stop = self._stop
        thread = threading.Thread(
            target=self._poll_until_resolved, args=(request_id, stop), name=f"virtual-poll-{request_id}", daemon=True
        )
        self._poller = thread
        thread.start()

    def _poll_until_resolved(self, request_id: int, stop: threading.Event) -> None:
        checks = max(1, int(self.max_wait_s // self.check_interval_s))  # Dynamo's SCALING_MAX_RETRIES
        for _ in range(checks + 1):
            if self._wait(stop, self.check_interval_s):
                return
            try:
                request = self.poll(request_id)
            except Exception:  # a store hiccup: the next check or the next cycle tries again
                log.exception("checking scaling request %s failed", request_id)
                continue
            if request is None or request.status != PENDING:
                if request is not None:
                    self.outcomes.append(request)
                    log.info("scaling request %s: %s", request_id, request.status)
                return

    def close(self) -> None:
        """Stop the background check (the rows stay; the next cycle picks them up)."""
        self._stop.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=5)
        self._poller = None
