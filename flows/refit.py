"""``refit``: search the ARIMA models' due refit points from the stored predictor states.

The ``plan`` cycles never run an order search (seconds per series): they forecast with the
last fit and leave the due refit point in the saved state. This flow, on its own schedule,
searches it and merges the fit into the newest state under the deployment's cycle lock (see
:mod:`planner_core.refit`), so no refit is lost when a flow-run process ends.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from planner_core.refit import REFITTED_PREDICTOR
from planner_core.store import Store
from tasks.artifacts import artifact_key
from tasks.refit import refit_one


@flow(name="refit", persist_result=False)
def refit(deployments: list[str] | None = None, db_url: str | None = None) -> list[dict[str, Any]]:
    """Refit the ARIMA models of ``deployments`` (names or namespace/name; default: every
    deployment with a saved ARIMA state)."""
    log = get_run_logger()
    rows: list[dict[str, Any]] = []
    with Store(db_url) as store:
        for deployment_id, namespace, name in store.deployments_with_predictor_state(REFITTED_PREDICTOR):
            if deployments and name not in deployments and f"{namespace}/{name}" not in deployments:
                continue
            for item in refit_one(store, deployment_id, f"{namespace}/{name}"):
                rows.append(
                    {
                        "deployment": f"{namespace}/{name}",
                        "series": item.series,
                        "outcome": item.outcome,
                        "refit_point": item.refit_point,
                        "search_s": round(item.search_s, 2),
                    }
                )
    fitted = sum(r["outcome"] == "fitted" for r in rows)
    log.info("refit: %d series fitted, %d checked", fitted, len(rows))
    create_table_artifact(rows, key=artifact_key("refit"), description=f"{fitted} ARIMA series refitted")
    return rows
