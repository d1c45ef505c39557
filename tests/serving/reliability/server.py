"""A real ``insightray serve`` process on loopback, for the reliability tests and the
service benchmark (``benchmarks/bench_service.py`` imports it).

The process gets its own ``INSIGHTRAY_HOME`` (and ``INSIGHTRAY_DATABASE_URL`` when given);
other ``INSIGHTRAY_*`` variables of the caller are dropped, except ``INSIGHTRAY_DATA`` (where
the shared data lives), so a developer's environment cannot change what is tested. Its
output goes to ``<home>/serve.log``; errors quote the end of that log.

Example:
    >>> server = ServiceProcess(Path("/tmp/ir-home"), settings={"rate_per_s": "1000"})
    >>> with server:  # doctest: +SKIP
    ...     server.start()
    ...     waited = server.wait_ready()
    ...     httpx.get(server.base_url + "/healthz").status_code
    200
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn
from fastapi import FastAPI

from insightray.serving.security.users import create_user
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db import Database

__all__ = [
    "PASSWORD",
    "ServiceProcess",
    "bearer",
    "create_users",
    "free_port",
    "insightray_cli",
    "serve_in_thread",
]

PASSWORD = "correct horse battery staple"
#: Variables of the caller that the service may keep.
_KEEP = {"INSIGHTRAY_DATA"}


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn (real HTTP) on a loopback port from a thread; yields the
    base URL. Faster than :class:`ServiceProcess` where the test shares loaded models."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def insightray_cli() -> str:
    """The ``insightray`` console script of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "insightray"
    found = str(beside) if beside.is_file() else shutil.which("insightray")
    if found is None:
        raise RuntimeError("the insightray command is not installed: run `make setup`")
    return found


def create_users(
    home: Path, database_url: str | None, users: dict[str, str], password: str = PASSWORD
) -> None:
    """Create ``username -> role`` users in the service database before it starts
    (what ``insightray users create`` does, without paying its start-up per user)."""
    settings = ServeSettings(home=home, database_url=database_url or "")
    db = Database.open(settings)
    try:
        for username, role in users.items():
            create_user(db, username, role, password)
    finally:
        db.close()


def bearer(base_url: str, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Authorization headers from ``POST /v1/auth/token``."""
    form = {"username": username, "password": password}
    response = httpx.post(f"{base_url}/v1/auth/token", data=form, timeout=60)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class ServiceProcess:
    """One ``insightray serve`` subprocess that can be started, killed and restarted.

    Attributes:
        home: ``INSIGHTRAY_HOME`` of the service.
        database_url: ``INSIGHTRAY_DATABASE_URL``; ``None`` uses SQLite in ``home``.
        settings: Further settings as ``{"rate_per_s": "1000"}`` (``INSIGHTRAY_RATE_PER_S``).
        port: The loopback port (a free one by default).
    """

    home: Path
    database_url: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the service's output goes."""
        return self.home / "serve.log"

    def env(self) -> dict[str, str]:
        """The environment of the service and of ``insightray`` commands on its data."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTRAY_") or k in _KEEP}
        env["INSIGHTRAY_HOME"] = str(self.home)
        if self.database_url:
            env["INSIGHTRAY_DATABASE_URL"] = self.database_url
        for name, value in self.settings.items():
            env[f"INSIGHTRAY_{name.upper()}"] = value
        return env

    def start(self) -> None:
        """Start the service (returns at once; see :meth:`wait_ready`)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the service is already running")
        self.home.mkdir(parents=True, exist_ok=True)
        command = [insightray_cli(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--log-level", "warning"],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, path: str = "/readyz", timeout_s: float = 240.0) -> float:
        """Poll ``path`` until it answers 200; returns the seconds waited.

        Raises:
            RuntimeError: The process exited, or ``timeout_s`` passed (with the log's end).
        """
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the service exited before it was ready:\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + path, timeout=5).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{path} not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait for a clean shutdown (SIGKILL after 30 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``insightray ARGS`` on this service's data (not raising on failure)."""
        return subprocess.run(
            [insightray_cli(), *args],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the service's output."""
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
