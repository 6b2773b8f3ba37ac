"""SIGTERM stops a cell command the way Ctrl-C does.

A batch scheduler (SLURM at a job's time limit or on preemption, Kubernetes on eviction) sends SIGTERM and
waits a grace period before SIGKILL. Turned into a KeyboardInterrupt, it lets a cell end as an interrupted one
(an eval cell saves what it has scored, its run is marked KILLED at once instead of being found dead by its
stale heartbeat later); the next run of the same command resumes it. A second SIGTERM is ignored so that this
clean-up can finish.
"""

from __future__ import annotations

import signal
import threading


def stop_on_sigterm() -> None:
    """From now on, SIGTERM raises KeyboardInterrupt in this process's main thread (once)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")
