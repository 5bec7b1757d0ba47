"""Waiting for another process that holds the project database, instead of failing after 5 s.

SQLite lets one writer at a time. A second writer (a second import, a fix during an import) waits in
SQLite's busy handler for up to `lock_timeout()` seconds (`VISIONLOOP_LOCK_TIMEOUT`, default 600) instead of
pysqlite's 5 s. Each write transaction starts with `BEGIN IMMEDIATE` (what pysqlite's implicit BEGIN and the
first write would do, in one step): tried first with a short busy timeout, and when that runs out the
writer says once that it is waiting, naming the other visionloop processes that have the database open
(Linux: read from /proc), then waits the rest. Past the limit the error is one line naming them — never a
"database is locked" traceback. No thread is used: a thread in the main process would stop the worker
runtime from forking.

On PostgreSQL (team mode) writers take turns the same way: the first write statement of a transaction takes
the project's advisory lock (`pg_advisory_xact_lock`, released by the commit or rollback), with the same
notice (naming the other backends' pid, host and command from `pg_stat_activity`) and the same one-line error.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from visionloop.core.errors import ProjectError

log = logging.getLogger(__name__)

#: seconds a statement waits on the lock before the waiting notice
NOTICE_AFTER = 2.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


class ProjectLocked(ProjectError):
    """Another process held the project database longer than the lock timeout."""


def lock_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get("VISIONLOOP_LOCK_TIMEOUT", "600")))
    except ValueError:
        return 600.0


def holders(db_file: str | Path) -> list[tuple[int, str]]:
    """Other processes that have `db_file` open: (pid, command line). Empty where /proc cannot tell."""
    target = os.path.realpath(db_file)
    found: list[tuple[int, str]] = []
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == target for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        found.append((pid, _command(argv)))
    return found


def _command(argv: list[str]) -> str:
    """`visionloop import data -p P` from a command line that ran the visionloop script or module."""
    for i, a in enumerate(argv):
        if a.endswith("/visionloop") or a == "visionloop":
            argv = ["visionloop", *argv[i + 1:]]
            break
    text = " ".join(" ".join(argv).split())  # one line, whatever the arguments held
    return text if len(text) <= 120 else text[:119] + "…"


def describe(db_file: str | Path) -> str:
    who = holders(db_file)
    if not who:
        return "another process"
    return "; ".join(f"pid {pid}: {cmd}" for pid, cmd in who[:3])


def begin_write(dbapi_conn: Any, db_file: str, root: Path | None) -> None:
    """Open the write transaction of a DBAPI (sqlite3) connection that has none, waiting for the lock with a notice."""
    if dbapi_conn.in_transaction:
        return
    full = lock_timeout()
    try:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(min(NOTICE_AFTER, full) * 1000)}")
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
        if full <= NOTICE_AFTER:
            raise _locked_error(db_file, root)
        log.warning("waiting for another visionloop process on this project (%s)…", describe(db_file))
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int((full - NOTICE_AFTER) * 1000)}")
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise _locked_error(db_file, root) from None
            raise
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(full * 1000)}")


def _locked_error(db_file: str, root: Path | None) -> ProjectLocked:
    return ProjectLocked(f"the project database was held by {describe(db_file)} for more than {lock_timeout():g} s",
                         path=root, hint="wait for it to finish, or set VISIONLOOP_LOCK_TIMEOUT (seconds) higher")


def watch(engine: Engine, db_file: str, root: Path | None) -> None:
    """Install the waiting write begin and the one-line error on a SQLite engine."""

    @event.listens_for(engine, "before_cursor_execute")
    def _begin(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            begin_write(conn.connection.dbapi_connection, db_file, root)

    @event.listens_for(engine, "handle_error")
    def _locked(ctx: Any) -> None:
        if "database is locked" in str(ctx.original_exception):
            raise _locked_error(db_file, root) from None


# -- PostgreSQL (team mode) -------------------------------------------------------------------------------------
#: the advisory lock that makes a project's PostgreSQL writers take turns as SQLite's do ("visionlp" in ASCII)
PG_WRITE_LOCK = 0x76697369_6F6E6C70
_HELD = "visionloop_write_lock"
_DESCRIBE_PG = (
    "SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'this host') FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    f"AND l.classid = {PG_WRITE_LOCK >> 32} AND l.objid = {PG_WRITE_LOCK & 0xFFFFFFFF} AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND a.pid <> pg_backend_pid()")


def application_name() -> str:
    """What PostgreSQL lists for this process (pg_stat_activity), and the waiting notice names: the command."""
    import sys

    return _command(["visionloop", *sys.argv[1:]] if sys.argv[0].endswith("visionloop") else sys.argv)[:63]


def _describe_pg(cursor: Any) -> str:
    try:
        cursor.execute(_DESCRIBE_PG)
        who = cursor.fetchall()
    except Exception:  # noqa: BLE001 - only for the notice; pg_stat_activity may be hidden from this role
        return "another process"
    return "; ".join(f"pid {pid} on {host}: {name or '?'}" for pid, name, host in who[:3]) or "another process"


def begin_write_pg(cursor: Any, url: str, root: Path | None) -> None:
    """Take the project's write lock in this transaction (released by its commit or rollback), waiting with a
    notice, then failing with one line past `lock_timeout()`: the PostgreSQL form of `begin_write`."""
    cursor.execute(f"SELECT pg_try_advisory_xact_lock({PG_WRITE_LOCK})")
    if cursor.fetchone()[0]:
        return
    full = lock_timeout()
    who = _describe_pg(cursor)
    if full > 0:
        log.warning("waiting for another visionloop process on this project (%s)…", who)
        cursor.execute(f"SET LOCAL lock_timeout = {max(1, int(full * 1000))}")
        try:
            cursor.execute(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")
            cursor.execute("SET LOCAL lock_timeout = 0")
            return
        except Exception as e:
            if (getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)) != "55P03":  # lock_not_available
                raise
    raise ProjectLocked(f"the project database {url} was held by {who} for more than {full:g} s", path=root,
                        hint="wait for it to finish, or set VISIONLOOP_LOCK_TIMEOUT (seconds) higher")


def watch_postgres(engine: Engine, root: Path | None) -> None:
    """Writers of a PostgreSQL project take turns, as on SQLite: the first write statement of a transaction
    takes the project's advisory lock (imports, fixes and gc see the same database state from start to commit)."""
    url = engine.url.render_as_string(hide_password=True)

    @event.listens_for(engine, "before_cursor_execute")
    def _begin(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not conn.info.get(_HELD) and statement.lstrip()[:7].upper().startswith(_WRITES):
            begin_write_pg(cursor, url, root)
            conn.info[_HELD] = True

    @event.listens_for(engine, "commit")
    def _committed(conn: Any) -> None:
        conn.info.pop(_HELD, None)

    @event.listens_for(engine, "rollback")
    def _rolled_back(conn: Any) -> None:
        conn.info.pop(_HELD, None)

    @event.listens_for(engine, "checkin")  # the pool rolls back what was neither committed nor rolled back
    def _returned(dbapi_conn: Any, record: Any) -> None:
        record.info.pop(_HELD, None)
