"""Errors of the audit store."""

from __future__ import annotations

from datetime import datetime

from planner_core.ports import CycleLockHeld


class StoreError(RuntimeError):
    """The database cannot be used as asked (schema out of date, unknown row, bad URL ...)."""


class LockBusy(StoreError, CycleLockHeld):
    """Another planning cycle holds the deployment's cycle lock."""

    def __init__(
        self,
        deployment_id: int,
        *,
        holder: str | None = None,
        run_id: int | None = None,
        since: datetime | None = None,
        waited_s: float = 0.0,
    ) -> None:
        self.deployment_id = deployment_id
        self.holder = holder
        self.run_id = run_id
        self.since = since
        self.waited_s = waited_s
        who = f"run {run_id}" if run_id is not None else "a cycle that has not started its run yet"
        if holder:
            who += f" (process {holder})"
        when = f" since {since.strftime('%Y-%m-%dT%H:%M:%SZ')}" if since is not None else ""
        super().__init__(
            f"deployment {deployment_id} is being planned by {who}{when}; waited {waited_s:g}s. "
            "A scheduled run and a manual re-plan never interleave: retry when it finishes "
            "or pass a longer wait."
        )
