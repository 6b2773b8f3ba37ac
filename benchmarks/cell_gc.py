"""What one full garbage collection costs a forked sweep cell, with and without freezing what it inherited.

accelerate collects garbage around every training. A cell forked from the sweep's fork server inherits the
libraries the server imported (the fork server's own preload list), and a collection walks every object alive.
This imports that list, forks a child that times full collections (the median of ``--repeats``), then has the
child freeze its heap (``gc.freeze()``, as ``amuro.commands.cell_process`` does first thing in a cell) and
time them again. Prints both medians, the ratio and the objects walked.

    python benchmarks/cell_gc.py [--repeats N]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import multiprocessing
import statistics
import time


def _collection_seconds(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        gc.collect()
        times.append(time.process_time() - started)
    return statistics.median(times)


def _measure(repeats: int, report) -> None:
    walked = len(gc.get_objects())
    unfrozen = _collection_seconds(repeats)
    gc.freeze()
    frozen = _collection_seconds(repeats)
    report.send(json.dumps({"objects": walked, "unfrozen": unfrozen, "frozen": frozen}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    from amuro.commands.cell_process import PRELOAD

    started = time.perf_counter()
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:  # the fork server leaves out what is not installed, too
            pass
    print(f"imported the fork server's preload ({len(PRELOAD)} modules) in {time.perf_counter() - started:.1f} s")
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_measure, args=(repeats, send))
    child.start()
    result = json.loads(receive.recv())
    child.join()
    ratio = result["frozen"] / result["unfrozen"] if result["unfrozen"] else float("nan")
    print(f"a full collection in a forked cell walks {result['objects']:,} objects")
    print(f"  without the freeze: {result['unfrozen'] * 1000:.1f} ms of CPU (median of {repeats})")
    print(f"  after gc.freeze():  {result['frozen'] * 1000:.3f} ms of CPU ({ratio:.1e}x the time)")


if __name__ == "__main__":
    main()
