"""A private PostgreSQL cluster for fault tests, made with Debian's postgresql-common tools.

The shared cluster on 5432 serves other people and CI; a test that restarts PostgreSQL restarts one
of its own: created for the run (`pg_createcluster`, a unique name and a free port, 127.0.0.1 only,
trust authentication), restarted as the test says (`pg_ctlcluster restart`, `-m immediate` for a
crash), and dropped when the run ends (`pg_dropcluster --stop`), whatever happened in between."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg2

NAME_PREFIX = "consortium_faults_"
CONFIG = Path("/etc/postgresql")
# Fast and small: the cluster lives for one test run. fsync off loses data only when the operating
# system itself crashes; a PostgreSQL crash (`-m immediate`) still recovers from its WAL.
SETTINGS = "listen_addresses = '127.0.0.1'\nfsync = off\nshared_buffers = '32MB'\nmax_connections = 100\n"
HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"


def unavailable() -> str | None:
    """Why no private cluster can be made here, or None."""
    if shutil.which("pg_createcluster") is None:
        return "pg_createcluster is not installed (Debian's postgresql-common)"
    if os.geteuid() != 0:
        return "pg_createcluster needs root to create a cluster owned by postgres"
    if not installed_versions():
        return "no PostgreSQL server is installed under /usr/lib/postgresql"
    return None


def installed_versions() -> list[str]:
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return []
    versions = [p.name for p in root.iterdir() if (p / "bin" / "postgres").exists()]
    return sorted(versions, key=lambda v: [int(part) for part in v.split(".") if part.isdigit()])


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class PrivateCluster:
    version: str
    name: str
    port: int

    @classmethod
    def create(cls, port: int) -> PrivateCluster:
        drop_leftovers()
        cluster = cls(installed_versions()[-1], f"{NAME_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}", port)
        config = CONFIG / cluster.version / cluster.name
        try:
            run("pg_createcluster", cluster.version, cluster.name, "-p", str(port), "--start-conf=manual")
            (config / "conf.d" / "faults.conf").write_text(SETTINGS)
            (config / "pg_hba.conf").write_text(HBA)
            cluster.ctl("start")
        except BaseException:
            cluster.drop()
            raise
        return cluster

    def ctl(self, action: str, *options: str) -> None:
        run("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action, *options)

    def restart(self, *, mode: str = "fast") -> None:
        """`fast` ends sessions and checkpoints; `immediate` kills the server like a crash, and it
        recovers from its WAL when it starts."""
        self.ctl("restart", "-m", mode)

    def stop(self, *, mode: str = "fast") -> None:
        self.ctl("stop", "-m", mode)

    def start(self) -> None:
        self.ctl("start")

    def drop(self) -> None:
        drop(self.version, self.name)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                                      connect_timeout=5)
        connection.autocommit = True
        return connection

    def create_database(self, name: str) -> str:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def drop_leftovers() -> None:
    """Clusters an earlier run left behind when it was killed before it could drop them (its process
    is gone); those of runs still going are kept."""
    for version in installed_versions():
        folder = CONFIG / version
        for path in folder.glob(f"{NAME_PREFIX}*") if folder.is_dir() else ():
            pid = path.name.removeprefix(NAME_PREFIX).split("_")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                drop(version, path.name)


def drop(version: str, name: str) -> None:
    subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120)
    # pg_dropcluster leaves the folder of a configuration file it did not write (conf.d/faults.conf).
    shutil.rmtree(CONFIG / version / name, ignore_errors=True)
