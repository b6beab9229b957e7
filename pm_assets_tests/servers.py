"""Real servers on 127.0.0.1 for the tests and benchmarks, each started and stopped by its user.

:class:`PostgresServer` runs Debian's PostgreSQL (``postgresql`` package: ``/usr/lib/postgresql/<version>/bin``, or
``PM_PG_BIN``) on a fresh data folder and a free port. PostgreSQL refuses to run as root: as root, the folder is
given to the ``postgres`` user the package creates, and the server runs as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``, or None when PostgreSQL is not installed."""
    if os.environ.get("PM_PG_BIN"):
        return Path(os.environ["PM_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A throw-away PostgreSQL server: ``with PostgresServer() as pg: pg.env`` (the ``PM_PG_*`` variables)."""

    user = "postgres"
    db = "pm_assets"

    def __init__(self, durable: bool = False):
        self.bin = postgres_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.durable = durable  # False: fsync off, for tests; True: the server's defaults, for benchmarks
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="pm_pg_"))
        self.data = self.folder / "data"
        self._as = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def env(self) -> dict[str, str]:
        return {
            "PM_PG_HOST": "127.0.0.1",
            "PM_PG_PORT": str(self.port),
            "PM_PG_USER": self.user,
            "PM_PG_PASSWORD": "",
            "PM_PG_DB": self.db,
        }

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.db}"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        options = f"-p {self.port} -h 127.0.0.1 -k {self.folder} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.db)
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def reset(self) -> None:
        """An empty database again (for the next user of the same server)."""
        for sql in (f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)", f"CREATE DATABASE {self.db}"):
            self._run(
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-q",
                "-c",
                sql,
            )

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"not reached within {timeout} s")


#: Azurite's documented development account (public, the same in every Azurite).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteServer:
    """Azurite's Blob service (the Azure Storage emulator, npm package ``azurite``) on a free port of 127.0.0.1,
    storing in a fresh folder. ``env`` holds the connection string adlfs reads (``az://`` URLs)."""

    def __init__(self):
        self.binary = os.environ.get("PM_AZURITE_BLOB") or shutil.which("azurite-blob")
        if self.binary is None:
            raise FileNotFoundError("azurite-blob is not installed (npm install -g azurite)")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="pm_azurite_"))
        self.proc: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};"
        )

    @property
    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def start(self) -> AzuriteServer:
        log = open(self.folder / "azurite.log", "wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.folder / "data"),
                "--skipApiVersionCheck",
                "--silent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"azurite exited ({self.proc.returncode}): {self.log()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, timeout=30)
        return self

    def create_container(self, name: str) -> str:
        """A new container; returns its ``az://`` URL."""
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(self.connection_string).create_container(name)
        return f"az://{name}"

    def log(self) -> str:
        path = self.folder / "azurite.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
