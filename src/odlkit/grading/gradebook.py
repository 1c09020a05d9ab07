"""Where a course's gradebook lives, and a consistent copy of it for a grading sandbox.

nbgrader keeps grades in the database at ``c.CourseDirectory.db_url`` (default: the SQLite file
``<course>/gradebook.db``; any SQLAlchemy URL, e.g. a PostgreSQL server shared by several
graders). Everything in :mod:`odlkit.grading` that reads grades opens :func:`url` of the course,
so a course whose gradebook is on a server is graded, reported and exported the same way.

A parallel grading sandbox (:mod:`odlkit.grading.parallel`) needs its *own* copy of the gradebook
as an SQLite file (it must not write into the real one): :func:`snapshot` makes it, with SQLite's
backup API for an SQLite gradebook, and for any other database by creating nbgrader's schema in a
fresh SQLite file and copying every row of every nbgrader table (parents before children), plus
the schema version nbgrader's migrations check.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


def url(course_dir: Path) -> str:
    """The gradebook URL nbgrader uses for the course in ``course_dir`` (its nbgrader_config.py)."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    course_dir = Path(course_dir).resolve()
    cfg_file = course_dir / "nbgrader_config.py"
    config = PyFileConfigLoader(cfg_file.name, path=str(course_dir)).load_config() if cfg_file.is_file() else Config()
    coursedir = CourseDirectory(config=config)
    if "root" not in config.get("CourseDirectory", {}):  # nbgrader runs in the course folder
        coursedir.root = str(course_dir)
    return coursedir.db_url


def sqlite_file(db_url: str) -> Path | None:
    """The file of an SQLite URL (``sqlite:////abs/path.db``), else None."""
    if db_url.startswith(SQLITE_PREFIX) and len(db_url) > len(SQLITE_PREFIX) and "?" not in db_url:
        return Path(db_url[len(SQLITE_PREFIX):])
    return None


def snapshot(db_url: str) -> bytes:
    """A consistent copy of the gradebook at ``db_url``, as the bytes of an SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "gradebook.db"
        src = sqlite_file(db_url)
        if src is not None:
            if not src.is_file():
                raise FileNotFoundError(f"no gradebook at {src} (release an assignment first)")
            src_con, dst_con = sqlite3.connect(str(src)), sqlite3.connect(str(dst))
            try:
                src_con.backup(dst_con)  # safe while nbgrader has the file open
            finally:
                dst_con.close()
                src_con.close()
        else:
            copy_rows(db_url, f"{SQLITE_PREFIX}{dst}")
        return dst.read_bytes()


def copy_rows(src_url: str, dst_url: str) -> None:
    """Copies nbgrader's tables (schema from nbgrader's own models) and the alembic schema
    version from the database at ``src_url`` into a new, empty database at ``dst_url``, in one
    read transaction on the source (so a concurrent writer cannot tear the copy)."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, text

    src, dst = create_engine(src_url, future=True), create_engine(dst_url, future=True)
    try:
        Base.metadata.create_all(bind=dst)
        with src.connect() as s, dst.begin() as d:
            with s.begin():
                for table in Base.metadata.sorted_tables:  # parents before children (foreign keys)
                    rows = [dict(r._mapping) for r in s.execute(table.select())]
                    if rows:
                        d.execute(table.insert(), rows)
                version = s.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            d.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            d.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version})
    finally:
        src.dispose()
        dst.dispose()


def alembic_head() -> str:
    """The schema version nbgrader stamps on a new gradebook, read in this process with alembic's
    own API from nbgrader's migration scripts. nbgrader gets it by running the ``alembic heads``
    command in a subprocess, which took 100 s of a 200 s ``generate_assignment`` on the loaded
    2-core machine (``python -m cProfile -m nbgrader generate_assignment``)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"nbgrader's migrations have {len(heads)} heads {heads}: cannot stamp a new gradebook")
    return heads[0]


def ensure_sqlite_gradebook(db_url: str) -> bool:
    """Create the SQLite gradebook at ``db_url`` as nbgrader's ``Gradebook`` creates a new one (its
    tables, and the alembic version row) if it does not exist yet, so nbgrader opens an existing
    database and does not start ``alembic``. Course rows are left to nbgrader. Returns whether it
    created the file; other databases (a server) are left alone."""
    path = sqlite_file(db_url)
    if path is None or path.exists():
        return False
    from nbgrader.api import Base
    from sqlalchemy import create_engine, text

    path.parent.mkdir(parents=True, exist_ok=True)
    head = alembic_head()
    engine = create_engine(db_url, future=True)
    try:
        Base.metadata.create_all(bind=engine)
        with engine.begin() as con:
            con.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);"))
            con.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})
    finally:
        engine.dispose()
    return True
