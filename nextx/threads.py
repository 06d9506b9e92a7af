"""Thread pools sized to the cores actually free.

torch's pool defaults to every core; when another process keeps some busy, its threads wait on each
other at every parallel region and a 2-core run slowed 6× beside one busy process. So the heavy
loops (trajectories, the NExt fit) run with ``free cores`` threads: the cores this process may use
minus the ones other processes kept busy (≥ 70% of a core, in user time) over a short sample of
``/proc/stat`` (Linux; elsewhere all of them). ``NEXTX_THREADS`` or ``OMP_NUM_THREADS`` in the environment fix the number instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

from nextx.errors import NextxError


def _cpu_times() -> tuple[int, int] | None:
    """(user, total) jiffies of all CPUs, or None where /proc/stat is not readable. Only user time
    counts as busy: a competing computation runs there, while the kernel's own work (writing back
    the files just written, interrupts) comes and goes and must not shrink the pool."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[0] + fields[1], sum(fields[:8])  # user + nice; of user … steal


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def busy_cores(sample_seconds: float = 0.05) -> float | None:
    """How many cores other processes kept busy over ``sample_seconds`` (this one sleeps meanwhile)."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(sample_seconds)
    second = _cpu_times()
    total = second[1] - first[1]
    if total <= 0:
        return None
    return (second[0] - first[0]) / total * (os.cpu_count() or 1)


_recent: dict[str, tuple[float, float | None]] = {}  # the last sample: (when, busy cores)


def free_cores() -> int:
    """Threads to use now: NEXTX_THREADS / OMP_NUM_THREADS if set, else usable cores minus busy ones
    (≥ 1; a sample is reused for 2 s, so many short calls do not each wait for one)."""
    for name in ("NEXTX_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        if not (value.isascii() and value.isdigit() and 0 < int(value) <= 4096):  # "²".isdigit() is True
            raise NextxError(f"{name}={value!r} is not a number of threads",
                             hint=f"Set {name} to a whole number from 1 (or unset it: nextx uses the free cores).")
        return int(value)
    when, busy = _recent.get("busy", (-1e9, None))
    if time.monotonic() - when > 2.0:
        busy = busy_cores()
        _recent["busy"] = (time.monotonic(), busy)
    usable = usable_cores()
    return usable if busy is None else max(1, min(usable, usable - int(busy + 0.3)))  # a core taken: ≥ 70% busy


@contextlib.contextmanager
def free_core_threads() -> Iterator[int]:
    """torch's intra-op pool at `free_cores` (at most its current size) inside the block; restored after."""
    before = torch.get_num_threads()
    threads = min(before, free_cores())
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
