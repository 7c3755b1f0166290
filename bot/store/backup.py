"""``librarian db backup`` and ``db restore``: the database and the stored files, in one tar.

A backup holds ``database.dump`` (``pg_dump``'s custom format, which ``pg_restore``
reads on any PostgreSQL at least as new) and ``files/``, the documents' original bytes
kept by the file store (re-indexing needs them).  The ``pg_dump``/``pg_restore`` run are
the embedded package's PostgreSQL 18 programs, which read and write any server from 9.2
on, so the same commands serve ``DATABASE_URL`` servers.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

from sqlalchemy import text

from bot.store.database import Database
from bot.store.embedded import POSTGRES_MAJOR, pgserver_module

DUMP_NAME = "database.dump"
FILES_NAME = "files"


class BackupError(RuntimeError):
    """A backup or restore failed; the message says why in plain words."""


def _program(name: str) -> str:
    return str(pgserver_module().utils.POSTGRES_VERSIONS[POSTGRES_MAJOR] / name)


def _libpq_url(db: Database) -> str:
    url = db.engine.url.render_as_string(hide_password=False)
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{what} failed: {reason}")


def backup(db: Database, files_dir: Path, target: Path) -> dict[str, int]:
    """Write the database and ``files_dir`` to the tar file ``target``; what it holds.

    The tar is written beside ``target`` and renamed into place only when complete, so
    an interrupted backup never leaves a file that looks whole.
    """
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="librarian-backup-") as tmp:
        dump = Path(tmp) / DUMP_NAME
        _run([_program("pg_dump"), "-Fc", "--no-owner", "-f", str(dump), _libpq_url(db)], "pg_dump")
        partial = target.with_name(target.name + ".partial")
        stored = 0
        with tarfile.open(partial, "w") as tar:
            tar.add(dump, arcname=DUMP_NAME)
            if files_dir.is_dir():
                for path in sorted(files_dir.rglob("*")):
                    if path.is_file():
                        tar.add(path, arcname=f"{FILES_NAME}/{path.relative_to(files_dir)}")
                        stored += 1
        partial.replace(target)
    return {"files": stored, "bytes": target.stat().st_size}


def _has_tables(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
        )


def restore(
    db: Database, files_dir: Path, source: Path, *, replace: bool = False
) -> dict[str, int]:
    """Restore a backup made by :func:`backup` into ``db`` and ``files_dir``.

    Refuses a database that already holds tables unless ``replace`` is set (then its
    tables are dropped first): a restore must never mix two histories silently.
    """
    if not source.is_file():
        raise BackupError(f"no backup at {source}")
    if not tarfile.is_tarfile(source):
        raise BackupError(f"{source} is not a Librarian backup (not a tar file)")
    with tarfile.open(source, "r") as tar, tempfile.TemporaryDirectory(prefix="lib-rst-") as tmp:
        names = tar.getnames()
        if DUMP_NAME not in names:
            raise BackupError(f"{source} is not a Librarian backup (it has no {DUMP_NAME})")
        if _has_tables(db) and not replace:
            raise BackupError(
                "the database already holds Librarian's tables; restoring would replace "
                "them: run again with --replace to do that"
            )
        tar.extractall(tmp, filter="data")
        argv = [_program("pg_restore"), "--no-owner", "-d", _libpq_url(db)]
        if replace:
            argv[1:1] = ["--clean", "--if-exists"]
        _run([*argv, str(Path(tmp) / DUMP_NAME)], "pg_restore")
        restored = 0
        extracted = Path(tmp) / FILES_NAME
        if extracted.is_dir():
            for path in sorted(extracted.rglob("*")):
                if path.is_file():
                    dest = files_dir / path.relative_to(extracted)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    path.replace(dest)
                    restored += 1
    return {"files": restored}
