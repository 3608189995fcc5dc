"""The inventory database: engine, migrations (run on first use), sessions, the change counter.

SQLite (the default, `$SWARMBOOT_HOME/swarmboot.db`) runs in WAL mode with a busy timeout, so the
server's readers never wait for a CLI writer and concurrent writers queue instead of failing.
PostgreSQL is used when `database_url` says so. Every change made through server.inventory bumps
the `generation` row in the same transaction; the server's caches watch it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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


BUSY_SECONDS = 10  # how long a writer waits for another one before it gives up with a clear message


class DatabaseError(SwarmbootError):
    """The inventory database cannot be opened or migrated."""


class DatabaseBusy(DatabaseError):
    """Another writer held the database longer than BUSY_SECONDS (HTTP 503: try again)."""

    status = 503


class DiskFull(DatabaseError):
    """The disk holding the database is full (HTTP 507)."""

    status = 507


def _translate(exc: OperationalError, url: Any, busy_seconds: float = BUSY_SECONDS) -> DatabaseError | None:
    """A clear error for what SQLite (or PostgreSQL) says about a locked database or a full disk."""
    text = str(exc.orig).lower()
    where = url.render_as_string(hide_password=True) if hasattr(url, "render_as_string") else str(url)
    if "database is locked" in text or "database table is locked" in text:
        return DatabaseBusy(
            f"the inventory database is locked: another command or the server kept it busy for more "
            f"than {busy_seconds:g} s ({where})",
            hint="wait for that command to finish (a large import?) and run this one again",
        )
    path = where.split("///", 1)[-1] if where.startswith("sqlite") else ""
    full = "disk is full" in text or "no space left" in text
    if path and not full and ("disk i/o error" in text or "unable to open" in text):
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(Path(path).parent).free < 1 << 20
    if full:
        free = ""
        with contextlib.suppress(OSError):
            free = f" ({shutil.disk_usage(Path(path).parent).free >> 10} KiB free)" if path else ""
        return DiskFull(
            f"the disk holding the inventory database is full{free}: {where}",
            hint="free some space there (df -h; old image versions: swarmboot image show NAME) and retry",
        )
    return None


@contextlib.contextmanager
def translated(url: Any, busy_seconds: float = BUSY_SECONDS) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        error = _translate(exc, url, busy_seconds)
        if error is None:
            raise
        raise error from None


def _sqlite_pragmas(busy_seconds: float) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        _set_pragmas(dbapi_connection, busy_seconds)

    return on_connect


def _set_pragmas(dbapi_connection: Any, busy_seconds: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def private_file(path: Path) -> None:
    """Create the SQLite file (and its directory, mode 0700 when new) readable by its owner only:
    it holds BMC passwords and node secrets. SQLite gives its -wal and -shm files the database
    file's mode; files made by an older version are tightened here."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if candidate.stat().st_mode & 0o077:
                candidate.chmod(0o600)


def make_engine(url: str, pool_size: int = 20, busy_seconds: float = BUSY_SECONDS) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and a pool sized for the server."""
    kwargs: dict[str, Any] = {"pool_pre_ping": False, "future": True}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_file(Path(path))
        kwargs.update(
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=60,
            connect_args={"check_same_thread": False, "timeout": busy_seconds},
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
        event.listen(engine, "connect", _sqlite_pragmas(busy_seconds))
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
        error = _translate(exc, engine.url)
        if error is not None:
            raise error from None
        raise DatabaseError(
            f"cannot open the inventory database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}",
            hint="check database_url (swarmboot.toml or $SWARMBOOT_DATABASE_URL) and that the "
            "database server is running",
        ) from exc


def head_revision() -> str:
    """The newest migration's revision (what a migrated database is at)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class Database:
    """One engine + session factory, migrated on first use."""

    def __init__(self, url: str, pool_size: int = 20, busy_seconds: float = BUSY_SECONDS) -> None:
        self.url = url
        self.busy_seconds = busy_seconds
        self.engine = make_engine(url, pool_size=pool_size, busy_seconds=busy_seconds)
        with _LOCK:
            if url not in _MIGRATED:
                migrate(self.engine)
                _MIGRATED.add(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @classmethod
    def from_settings(cls, settings: Settings, pool_size: int = 20) -> Database:
        url = settings.effective_database_url
        return cls(url, pool_size=pool_size, busy_seconds=settings.database_busy_seconds)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with translated(self.engine.url, self.busy_seconds), self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and bumps the generation counter."""
        try:
            with translated(self.engine.url, self.busy_seconds), self.sessions() as session, session.begin():
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
        with translated(self.engine.url, self.busy_seconds), self.sessions() as session, session.begin():
            yield session

    def generation(self) -> int:
        with translated(self.engine.url, self.busy_seconds), self.sessions() as session:
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
