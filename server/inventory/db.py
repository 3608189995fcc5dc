"""The inventory database: engine, migrations (run on first use), sessions, the change counter.

SQLite (the default, `$SWARMBOOT_HOME/swarmboot.db`) runs in WAL mode with a busy timeout, so the
server's readers never wait for a CLI writer and concurrent writers queue instead of failing.
PostgreSQL is used when `database_url` says so. Every change made through server.inventory bumps
the `generation` row in the same transaction; the server's caches watch it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ground.config import Settings
from ground.errors import ConflictError, SwarmbootError
from server.inventory.models import Meta

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATED: set[str] = set()
_LOCK = threading.Lock()


class DatabaseError(SwarmbootError):
    """The inventory database cannot be opened or migrated."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, pool_size: int = 20) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and a pool sized for the server."""
    kwargs: dict[str, Any] = {"pool_pre_ping": False, "future": True}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=60,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=60)
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise DatabaseError(
            f"cannot use database URL {url!r}: {exc}",
            hint="database_url takes a SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db",
        ) from exc
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (from an empty database too)."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot open the inventory database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}",
            hint="check database_url (swarmboot.toml or $SWARMBOOT_DATABASE_URL) and that the "
            "database server is running",
        ) from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class Database:
    """One engine + session factory, migrated on first use."""

    def __init__(self, url: str, pool_size: int = 20) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        with _LOCK:
            if url not in _MIGRATED:
                migrate(self.engine)
                _MIGRATED.add(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @classmethod
    def from_settings(cls, settings: Settings, pool_size: int = 20) -> Database:
        return cls(settings.effective_database_url, pool_size=pool_size)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and bumps the generation counter."""
        try:
            with self.sessions() as session, session.begin():
                yield session
                session.flush()
                bump_generation(session)
        except IntegrityError as exc:
            raise ConflictError(
                f"the change conflicts with the inventory: {exc.orig}",
                hint="a name, MAC or address is used twice; check with: swarmboot node list",
            ) from None

    @contextlib.contextmanager
    def write_state(self) -> Iterator[Session]:
        """A transaction for runtime state (events): no generation bump, caches stay valid."""
        with self.sessions() as session, session.begin():
            yield session

    def generation(self) -> int:
        with self.sessions() as session:
            row = session.get(Meta, "generation")
            return row.value if row else 0

    def close(self) -> None:
        self.engine.dispose()


def bump_generation(session: Session) -> None:
    row = session.execute(select(Meta).where(Meta.key == "generation").with_for_update()).scalar()
    if row is None:
        session.add(Meta(key="generation", value=1))
    else:
        row.value += 1
