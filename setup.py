"""What the wheel ships (the project's metadata is in pyproject.toml).

Only ``planner_core`` is installed. ``flows``, ``tasks`` and ``migrations`` are generic
top-level names that other distributions use too (installing ours would shadow theirs, or
theirs ours), and none of them needs to be importable from site-packages:

* ``flows/`` and ``tasks/`` are Prefect entry points: ``prefect deploy`` runs from the
  repository root and the worker imports them from its working directory (the deployment's
  pull step), tests import them with the repository root on ``sys.path`` (pytest ``pythonpath``);
* the Alembic migrations in the top-level ``migrations/`` ship inside the package as
  ``planner_core/migrations`` (found by :func:`planner_core.store.migrate.script_location`); a
  checkout or editable install runs them from ``migrations/`` itself, and ``alembic upgrade
  head`` from the repository root keeps working with ``alembic.ini``.
"""

from setuptools import find_namespace_packages, setup

setup(
    # planner_core's modules and data directories (profiles, traces), then the migrations
    packages=[
        *find_namespace_packages(include=["planner_core", "planner_core.*"], exclude=["*.__pycache__"]),
        "planner_core.migrations",
        "planner_core.migrations.versions",
    ],
    package_dir={"planner_core.migrations": "migrations"},
    package_data={"": ["*"]},
    exclude_package_data={"": ["*.pyc"]},
)
