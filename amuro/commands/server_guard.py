"""Runs a command (the sweep's local tracking server) for as long as the process that started it lives.

    python -m amuro.commands.server_guard -- COMMAND...

The guard leads its own process group with the command inside it, so stopping the group stops both; and when
the process that started the guard dies without stopping it (a killed sweep), the guard stops the group
itself instead of leaving a server behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 1.0


def guard(command: list[str]) -> int:
    parent = os.getppid()
    child = subprocess.Popen(command)
    while child.poll() is None:
        if os.getppid() != parent:
            os.killpg(os.getpgid(0), signal.SIGTERM)
        time.sleep(POLL_SECONDS)
    return child.returncode


if __name__ == "__main__":
    arguments = sys.argv[1:]
    sys.exit(guard(arguments[1:] if arguments[:1] == ["--"] else arguments))
