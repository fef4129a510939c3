"""Prefect artifacts: what a cycle decided, readable in the UI next to the flow run."""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from planner_core import summary
from planner_core.cycle import CycleResult


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


@task(name="publish-decision", cache_policy=NO_CACHE, persist_result=False, timeout_seconds=30)
def publish_decision(deployment: str, result: CycleResult) -> None:
    """A table of the decision (observed and predicted load, replicas before and after), with
    the reason and the ids of its SQL rows in the description. Keyed per deployment, so the
    UI's Artifacts page keeps each deployment's decision history."""
    description = summary.markdown(deployment, result)
    if result.decision is None:
        create_markdown_artifact(description, key=artifact_key("decision", deployment), description="no decision")
        return
    create_table_artifact(
        summary.decision_rows(result), key=artifact_key("decision", deployment), description=description
    )
