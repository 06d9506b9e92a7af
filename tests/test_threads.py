"""Thread pools sized to the cores other processes leave free (nextx.threads)."""

import pytest
import torch

import nextx.threads as threads


@pytest.mark.parametrize(("usable", "busy", "expected"), [(2, 0.1, 2), (2, 0.6, 2), (2, 0.75, 1), (2, 1.0, 1),
                                                            (2, 1.6, 1), (2, 2.0, 1), (8, 2.4, 6), (8, 2.8, 5),
                                                            (4, None, 4)])
def test_free_cores_are_the_usable_ones_minus_the_busy(monkeypatch, usable, busy, expected):
    monkeypatch.delenv("NEXTX_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: usable)
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    monkeypatch.setattr(threads, "_recent", {})
    assert threads.free_cores() == expected
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    assert threads.free_cores() == expected  # the sample is reused for 2 s


def test_the_environment_fixes_the_count(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 100.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.free_cores() == 3
    monkeypatch.setenv("NEXTX_THREADS", "5")
    assert threads.free_cores() == 5


def test_the_pool_is_restored_and_never_grown(monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda: 64)
    before = torch.get_num_threads()
    with threads.free_core_threads() as inside:
        assert inside == torch.get_num_threads() == before
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    with pytest.raises(KeyboardInterrupt), threads.free_core_threads() as inside:
        assert inside == torch.get_num_threads() == 1
        raise KeyboardInterrupt
    assert torch.get_num_threads() == before


def test_busy_cores_reads_this_machine():
    busy = threads.busy_cores(0.05)
    assert busy is None or 0 <= busy <= (threads.os.cpu_count() or 1) + 1e-9
