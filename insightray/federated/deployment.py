"""Start Flower's deployment engine (SuperLink, SuperNodes) and submit a run with ``flwr run``.

Everything is Flower's own processes and protocol: :class:`SuperLink` and :class:`SuperNode`
start ``flower-superlink`` / ``flower-supernode`` (each in its own process group, stopped by
its PID), and :func:`submit_run` writes a tiny Flower app project (its ``pyproject.toml``
names ``insightray.federated.apps`` and carries the run's settings as the app config) and
runs ``flwr run --stream`` against the SuperLink's Control API. The same classes serve
``federated simulate`` (everything on loopback) and ``federated server`` / ``client``.

TLS: give :class:`Tls` (a CA certificate, and the SuperLink's certificate and key) and the
SuperLink serves HTTPS; SuperNodes and ``flwr run`` verify it against the CA.

Site authentication is Flower's own SuperNode authentication: give :class:`SuperLink` the
authorised sites' public keys (``site_keys``, EC keys in OpenSSH format, see
:func:`~insightray.federated.certificates.make_site_keys`) and it starts with
``--enable-supernode-auth`` and registers each key through Flower's Control API (``flwr
supernode register``); a :class:`SuperNode` given its private key (``key``) signs its requests
with it. A SuperNode whose key was not registered is refused when it tries to activate
(Flower exit code 305) and never receives a task. Flower allows this only over TLS.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from insightray.errors import ConfigError, FederatedRunError

__all__ = [
    "SuperLink",
    "SuperNode",
    "Tls",
    "free_port",
    "register_site",
    "site_key_files",
    "submit_run",
]

APP_NAME = "insightray-federated"


@dataclass(frozen=True)
class Tls:
    """Certificates of a TLS deployment (PEM files).

    Attributes:
        ca: The CA certificate everyone verifies the SuperLink against.
        cert: The SuperLink's certificate (server side only).
        key: The SuperLink's private key (server side only).
    """

    ca: Path
    cert: Path | None = None
    key: Path | None = None


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["FLWR_HOME"] = str(home)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ConfigError(name, "is not installed", "pip install 'insightray[federated]'")
    return str(path)


class _Process:
    """A Flower process in its own process group, logging to a file."""

    def __init__(self, args: list[str], log_path: Path, home: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_environment(home),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """Stop the process and the children it started (its process group), by its PID."""
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self._log.close()

    def kill(self) -> None:
        """Kill at once (a site crashing mid-round)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _wait_for_port(port: int, process: _Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise FederatedRunError("Flower", "a process exited", f"see {process.log_path}")
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise FederatedRunError("Flower", f"port {port} not open after {timeout:.0f} s", "retry")


class SuperLink(_Process):
    """``flower-superlink`` on ``host:port`` (Fleet, Control and ServerAppIo over HTTP(S))."""

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 9091,
        tls: Tls | None = None,
        site_keys: Sequence[Path] = (),
        start_timeout: float = 180.0,
    ) -> None:
        args = [_tool("flower-superlink"), "--host", host, "--port", str(port)]
        args += ["--disable-runtime-dependency-installation"]
        if site_keys:
            if tls is None:
                raise ConfigError("site keys", "need TLS (Flower's rule)", "give the certificates")
            args.append("--enable-supernode-auth")
        if tls is None:
            args.append("--insecure")
        else:
            if tls.cert is None or tls.key is None:
                raise ConfigError("tls", "the SuperLink needs its certificate and key", "")
            args += ["--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.cert)]
            args += ["--ssl-keyfile", str(tls.key)]
        home.mkdir(parents=True, exist_ok=True)
        super().__init__(args, home / "superlink.log", home)
        self.address = f"{host}:{port}"
        self.port = port
        #: Where processes on this machine reach it (``flwr run``, key registration).
        self.local_address = f"127.0.0.1:{port}" if host in ("0.0.0.0", "::") else self.address
        _wait_for_port(port, self, start_timeout)
        try:
            for public_key in site_keys:
                register_site(home, self.local_address, public_key, tls=tls)
        except FederatedRunError:
            self.stop()
            raise


class SuperNode(_Process):
    """``flower-supernode`` for one site; ``node_config`` reaches only that site's ClientApp."""

    def __init__(
        self,
        home: Path,
        superlink: str,
        node_config: dict[str, str | int],
        *,
        port: int,
        tls: Tls | None = None,
        key: Path | None = None,
        name: str = "site",
    ) -> None:
        args = [_tool("flower-supernode"), "--superlink", superlink]
        args += ["--host", "127.0.0.1", "--port", str(port)]
        if tls is None:
            args.append("--insecure")
        else:
            args += ["--root-certificates", str(tls.ca)]
        if key is not None:
            args += ["--auth-supernode-private-key", str(key)]
        args += ["--node-config", " ".join(_toml_pair(k, v) for k, v in node_config.items())]
        home.mkdir(parents=True, exist_ok=True)
        super().__init__(args, home / f"{name}.log", home)


def _toml_pair(key: str, value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{key}={value}"
    return f"{key}={_toml_string(value)}"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_app(folder: Path, run_config: dict[str, str | int | float | bool]) -> None:
    import tomli_w

    project = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {
            "name": APP_NAME,
            "version": "1.0.0",
            "description": "Insight Ray federated fracture classifier",
            "license": "Apache-2.0",
            "dependencies": [],
        },
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "insightray",
                    "components": {
                        "serverapp": "insightray.federated.apps:server_app",
                        "clientapp": "insightray.federated.apps:client_app",
                    },
                    "config": run_config,
                }
            }
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_bytes(tomli_w.dumps(project).encode())


def site_key_files(path: Path) -> list[Path]:
    """The public keys in ``path``: the file itself, or a folder's ``*.pub`` files.

    Raises:
        ConfigError: No such file, or a folder without ``*.pub`` files.
    """
    if path.is_file():
        return [path]
    keys = sorted(path.glob("*.pub")) if path.is_dir() else []
    if not keys:
        raise ConfigError(str(path), "holds no site public key (*.pub)", "run federated keys")
    return keys


def _write_connection(home: Path, superlink: str, tls: Tls | None) -> None:
    """``FLWR_HOME/config.toml``: the SuperLink connection ``flwr`` commands use."""
    import tomli_w

    connection: dict[str, str | bool] = {"address": superlink}
    if tls is None:
        connection["insecure"] = True
    else:
        connection["root-certificates"] = str(tls.ca)
    home.mkdir(parents=True, exist_ok=True)
    config = {"superlink": {"default": "coordinator", "coordinator": connection}}
    (home / "config.toml").write_bytes(tomli_w.dumps(config).encode())


def register_site(home: Path, superlink: str, public_key: Path, *, tls: Tls | None) -> None:
    """Authorise one site's public key on the SuperLink (``flwr supernode register``).

    Raises:
        FederatedRunError: Flower refused the key (not an EC key, already registered).
    """
    _write_connection(home, superlink, tls)
    done = subprocess.run(
        [_tool("flwr"), "supernode", "register", str(public_key), "coordinator"],
        capture_output=True,
        env=_environment(home),
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise FederatedRunError(
            "flwr supernode register",
            f"refused {public_key.name}",
            "check it is a site's .pub key from federated keys, registered once",
        )


def submit_run(
    home: Path,
    superlink: str,
    run_config: dict[str, str | int | float | bool],
    *,
    tls: Tls | None = None,
    timeout: float = 3600.0,
) -> Path:
    """Run the app on the SuperLink with ``flwr run --stream``; return its log file.

    Raises:
        FederatedRunError: ``flwr run`` failed or ran past ``timeout``.
    """
    _write_connection(home, superlink, tls)
    app = home / "app"
    _write_app(app, run_config)
    log_path = home / "run.log"
    with log_path.open("wb") as log:
        try:
            done = subprocess.run(
                [_tool("flwr"), "run", str(app), "coordinator", "--stream"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(home),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise FederatedRunError(
                "flwr run", f"took over {timeout:.0f} s", f"see {log_path}"
            ) from error
    if done.returncode != 0:
        raise FederatedRunError("flwr run", f"failed (exit {done.returncode})", f"see {log_path}")
    return log_path
