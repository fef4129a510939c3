"""Every migration up and down on SQLite and PostgreSQL; models and migrations agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from planner_core.cli import main
from planner_core.store import Store, StoreError, make_engine, migrate
from planner_core.store.models import VIEW_NAMES, Base

TABLES = {t.name for t in Base.metadata.sorted_tables}


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def _objects(engine) -> tuple[set[str], set[str]]:
    insp = inspect(engine)
    return set(insp.get_table_names()) - {"alembic_version"}, set(insp.get_view_names())


def test_revisions_are_linear():
    """One head, no branches or merges: each revision's parent is the one numbered before it
    (numbers increase; a renumbered migration may leave a gap), and each file's number is its id."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1, script.get_heads()
    revs = _revisions()
    assert revs[0] == "0001" and revs[-1] == migrate.head_revision()
    assert all(r.isdigit() and len(r) == 4 for r in revs) and revs == sorted(set(revs)), revs
    for previous, rev in zip([None, *revs], revs, strict=False):
        script_rev = script.get_revision(rev)
        assert script_rev.down_revision == previous, (rev, script_rev.down_revision)
        assert not script_rev.is_branch_point and not script_rev.is_merge_point
        assert Path(script_rev.path).name.startswith(f"{rev}_")


def test_every_migration_up_and_down(db_url):
    engine = make_engine(db_url)
    revs = _revisions()
    assert _objects(engine) == (set(), set())
    for rev in revs:  # up, one step at a time
        migrate.upgrade(engine, rev)
        assert migrate.current_revision(engine) == rev
    tables, views = _objects(engine)
    assert tables == TABLES
    assert views == set(VIEW_NAMES)
    with engine.connect() as conn:
        for view in VIEW_NAMES:
            conn.execute(text(f"SELECT * FROM {view}")).all()
    for rev in reversed(revs):  # down, one step at a time
        previous = revs[revs.index(rev) - 1] if revs.index(rev) > 0 else "base"
        migrate.downgrade(engine, previous)
        assert migrate.current_revision(engine) == (None if previous == "base" else previous)
    assert _objects(engine) == (set(), set())
    migrate.upgrade(engine, "head")  # and up again after a full downgrade
    assert _objects(engine)[0] == TABLES
    engine.dispose()


def test_models_and_migrations_agree(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine, "head")
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; autogenerate would emit: {diff}"


def test_empty_sqlite_file_is_upgraded_on_first_use(sqlite_url):
    store = Store(sqlite_url)
    assert store.current_revision() == migrate.head_revision()
    assert _objects(store.engine)[1] == set(VIEW_NAMES)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_out_of_date_database_asks_for_db_upgrade(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0001")
    engine.dispose()
    with pytest.raises(StoreError, match="sla-planner db upgrade"):
        Store(db_url)
    assert main(["db", "upgrade", "--db-url", db_url]) == 0
    store = Store(db_url)
    assert store.current_revision() == migrate.head_revision()
    store.close()


def test_empty_postgres_is_not_upgraded_silently(postgres_url):
    with pytest.raises(StoreError, match=r"no planner schema yet.*sla-planner db upgrade"):
        Store(postgres_url)
    store = Store(postgres_url, check_schema=False)
    store.upgrade()
    store.close()
    Store(postgres_url).close()


def test_db_current_command(sqlite_url, capsys):
    assert main(["db", "upgrade", "--db-url", sqlite_url]) == 0
    capsys.readouterr()
    assert main(["db", "current", "--db-url", sqlite_url]) == 0
    assert migrate.head_revision() in capsys.readouterr().out


def test_alembic_config_does_not_depend_on_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert migrate.head_revision() == _revisions()[-1]
