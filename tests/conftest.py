"""Shared fixtures.

Databases:

* ``sqlite_url`` - a SQLite file under ``tmp_path``.
* ``postgres_url`` - a scratch database ``planner_test_<random>`` created on the PostgreSQL
  server at 127.0.0.1:5432 (user ``postgres``; override the admin URL with
  ``PLANNER_TEST_PG_ADMIN_URL``) and dropped afterwards. When the server is unreachable the test
  is skipped, except under ``CI=true`` where it fails.
* ``db_url`` - parametrised over both.

Hypothesis profiles: ``ci`` (default, 300 examples a property) and ``thorough`` (10,000), chosen
with ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis: the suite runs each property at 300 examples ("ci", the default);
# HYPOTHESIS_PROFILE=thorough runs 10,000 (issue 16's bar for the parsers; minutes, not in CI).
# A test that sets max_examples itself keeps it in both.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("thorough", max_examples=10_000, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PG_ADMIN_URL = os.environ.get("PLANNER_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'planner.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        message = f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()} is unreachable: {exc}"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    name = f"planner_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory) -> Iterator[None]:
    """One Prefect test server for the whole session (it takes ~20 s to start), with its own
    PREFECT_HOME so that concurrent test runs never share a Prefect database."""
    home = tmp_path_factory.mktemp("prefect-home")
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
