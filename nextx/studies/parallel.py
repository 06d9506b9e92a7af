"""Seeds in parallel processes, one torch thread each: on a shared machine the default thread pool
can make a tiny training run 20× slower, and independent seeds use the cores better than threads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor


def _with_threads(threads: int, work: Callable, *args):
    import torch

    torch.set_num_threads(threads)
    return work(*args)


def map_seeds(work: Callable, seeds, jobs: int, *args, threads: int | None = None) -> Iterator[tuple[int, object]]:
    """(seed, work(*args, seed)) for every seed, ``jobs`` processes at a time (``threads`` torch threads
    each; default 1 when jobs > 1, else every core), in seed order. ``work`` must be importable."""
    threads = threads or (1 if jobs > 1 else (os.cpu_count() or 1))
    with ProcessPoolExecutor(jobs) as pool:
        futures = [(seed, pool.submit(_with_threads, threads, work, *args, seed)) for seed in seeds]
        for seed, future in futures:
            yield seed, future.result()
