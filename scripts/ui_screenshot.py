"""Screenshot of the Prefect UI showing a `plan` decision artifact (for the README).

Starts a Prefect server (own PREFECT_HOME, free port), runs a few `plan` flow runs in this
process over the simulated deployment (planner_core.sim.world), then has headless Chromium
(Debian `chromium`) render the artifact page. Stops the server by its process id.

Usage: .venv/bin/python scripts/ui_screenshot.py [--out docs/img/prefect-decision-artifact.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planner_core.config import make_config  # noqa: E402
from planner_core.runtime import using_ports  # noqa: E402
from planner_core.sim.world import SimWorld  # noqa: E402
from planner_core.stack import Stack, start_prefect_server  # noqa: E402

DEPLOYMENT = "llama-8b-disagg"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "prefect-decision-artifact.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp) / "stack") as stack:
        api = start_prefect_server(stack)
        os.environ.update({k: v for k, v in stack.env.items() if k.startswith("PREFECT_")})
        from flows.plan import plan

        config = make_config(environment="virtual", adjustment_interval_s=60, max_gpu_budget=16)
        world = SimWorld(config, rate_per_s=12.0)
        with using_ports(world.ports):
            for k in range(4):
                end = world.window_end(k, 60)
                world.clock.set(end)
                plan(deployment=DEPLOYMENT, settings=config, db_url=f"sqlite:///{tmp}/planner.db", window_end=end)
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
        from prefect.client.schemas.sorting import ArtifactSort

        with get_client(sync_client=True) as client:
            (latest,) = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"decision-{DEPLOYMENT}"])),
                sort=ArtifactSort.CREATED_DESC,
                limit=1,
            )
        ui = api.removesuffix("/api")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1400,1000",
                "--virtual-time-budget=60000",
                "--run-all-compositor-stages-before-draw",
                f"--user-data-dir={tmp}/chromium",
                f"--screenshot={args.out}",
                f"{ui}/artifacts/artifact/{latest.id}",
            ],
            check=True,
            timeout=180,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
