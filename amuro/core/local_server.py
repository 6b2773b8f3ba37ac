"""A local ``mlflow server`` over a sqlite store, on a free loopback port: started, waited for, stopped.

Used by the sweep (to let parallel cells share a sqlite store), the tests and the benchmarks. It listens on
127.0.0.1 only and leads its own process group, so stopping it stops the uvicorn workers it starts. Given
``allowed_hosts`` (names of this machine), it answers only clients that call it by one of them
(``--allowed-hosts``, as a server for several machines is started), and its URI uses the first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """``mlflow server`` over ``database`` (a sqlite file). Artifacts are served from ``artifacts`` through the
    server (``serve_artifacts``), or, with it False, written there by clients directly (so the same store can
    also be read through its sqlite file). ``guarded``: the server stops by itself if this process dies."""

    def __init__(
        self,
        database: str | Path,
        artifacts: str | Path,
        *,
        log: str | Path | None = None,
        serve_artifacts: bool = True,
        guarded: bool = False,
        port: int | None = None,
        allowed_hosts: list[str] | None = None,
    ) -> None:
        self.database, self.artifacts = Path(database).resolve(), Path(artifacts).resolve()
        self.log, self.serve_artifacts, self.guarded = log, serve_artifacts, guarded
        self.port = port or free_port()
        self.allowed_hosts = [f"{name}:{self.port}" for name in allowed_hosts or []]
        address = self.allowed_hosts[0] if self.allowed_hosts else f"127.0.0.1:{self.port}"
        self.uri = f"http://{address}"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        where = ["--artifacts-destination" if self.serve_artifacts else "--default-artifact-root", str(self.artifacts)]
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.database}",
            *where,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            *(["--allowed-hosts", ",".join(self.allowed_hosts)] if self.allowed_hosts else []),
        ]
        return [sys.executable, "-m", "amuro.commands.server_guard", "--", *command] if self.guarded else command

    def start(self, timeout: float = 90) -> str:
        from amuro.core.server_health import wait_for_server

        output = open(self.log, "w") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            )
        finally:
            if self.log:
                output.close()
        try:
            wait_for_server(self.uri, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self.uri

    def stop(self, timeout: float = 20) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
