"""Global / local / target rank-1 series against dense SVDs of the materialised deltas, and signs."""

import pytest
import torch
from helpers import load_lora_delta

from nextx import load_run, trajectories

TOL = 1e-9  # relative, float64 from float32 adapters


def test_every_series_matches_dense_svd(trl_run):
    run = load_run(trl_run)
    traj = trajectories(run, horizon=3)
    dense = {
        step: {name: load_lora_delta(trl_run / f"checkpoint-{step}", name) for name in run.modules} for step in run.steps
    }
    for name, mt in traj.modules.items():
        for i, step in enumerate(run.steps):
            previous = dense[run.steps[i - 1]][name] if i else torch.zeros_like(dense[step][name])
            cases = [(mt.global_delta, dense[step][name]), (mt.local_delta, dense[step][name] - previous)]
            if i + 3 < len(run.steps):
                cases.append((mt.target_delta, dense[run.steps[i + 3]][name] - dense[step][name]))
            for series, matrix in cases:
                U, S, Vh = torch.linalg.svd(matrix)
                assert abs(series.sigma[i].item() - S[0].item()) <= TOL * S[0].item()
                rank1 = series.sigma[i] * torch.outer(series.u[i].double(), series.v[i].double())
                assert torch.allclose(rank1, S[0] * torch.outer(U[:, 0], Vh[0]), atol=1e-6 * S[0].item())
        assert mt.target_delta.steps == run.steps[:-3]


def test_signs_are_canonical_and_consistent(trl_run):
    traj = trajectories(load_run(trl_run), horizon=2)
    for mt in traj.modules.values():
        g = mt.global_delta
        first = g.u[0]
        assert first[first.abs().argmax()] > 0
        assert all(float(g.u[t] @ g.u[t - 1]) >= 0 for t in range(1, len(g.steps)))
        for series in (mt.local_delta, mt.target_delta):
            assert all(float(series.u[t] @ g.u[t]) >= 0 for t in range(len(series.steps)))


def test_only_requested_kinds_are_computed(trl_run):
    traj = trajectories(load_run(trl_run), horizon=0, kinds=("global",))
    mt = next(iter(traj.modules.values()))
    assert mt.local_delta is None and mt.target_delta is None
    assert len(mt.energy) == 8 and all(0 < e <= 1 for e in mt.energy)


def test_a_series_started_from_a_reference_keeps_the_chained_signs():
    """Random factors: the SVD's signs flip from checkpoint to checkpoint, so the chained global
    series flips many of them; restarting at checkpoint 4 aligned to the chain's u there must give
    exactly the chain's triplets from then on (what a saved NExt predictor relies on)."""
    from nextx.lowrank import FactorStack
    from nextx.trajectory import module_trajectory

    g = torch.Generator().manual_seed(7)
    lefts = [torch.randn(30, 3, generator=g, dtype=torch.float64) for _ in range(7)]
    rights = [torch.randn(3, 20, generator=g, dtype=torch.float64) for _ in range(7)]
    steps = [10 * (i + 1) for i in range(7)]
    full = module_trajectory("m", FactorStack(lefts, rights), steps, 0, kinds=("global", "local"))
    stack = FactorStack.lazy(7, lambda i: (lefts[i], rights[i]))
    read = []
    original = stack._load
    stack._load = lambda i: (read.append(i), original(i))[1]
    part = module_trajectory("m", stack, steps, 0, kinds=("global", "local"), local_last_only=True, start=4,
                             reference=full.global_delta.u[4].clone())
    assert part.global_delta.steps == steps[4:] and sorted(read) == [4, 5, 6]
    assert torch.allclose(part.global_delta.u, full.global_delta.u[4:], atol=1e-6)
    assert torch.allclose(part.global_delta.v, full.global_delta.v[4:], atol=1e-6)
    assert torch.allclose(part.local_delta.u, full.local_delta.u[-1:], atol=1e-6)
    flips = [float(full.global_delta.u[i] @ full.global_delta.u[i - 1]) for i in range(1, 7)]
    assert all(f >= 0 for f in flips)


DEVICES = ["auto"] + [pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_trajectories_on_another_device_match_the_cpu_and_come_back_on_it(trl_run, device):
    """``device``: the factor products run there (CUDA when present, for ``auto``), the series come
    back on the CPU and agree with the CPU's to 1e-9 relative (float64 either way)."""
    run = load_run(trl_run)
    on_cpu, elsewhere = trajectories(run, horizon=2), trajectories(run, horizon=2, device=device)
    for name, mt in on_cpu.modules.items():
        for kind in ("global_delta", "local_delta", "target_delta"):
            ours, theirs = getattr(mt, kind), getattr(elsewhere.modules[name], kind)
            assert theirs.sigma.device.type == theirs.u.device.type == theirs.v.device.type == "cpu"
            assert torch.allclose(theirs.sigma, ours.sigma, rtol=1e-9, atol=0)
            assert torch.allclose(theirs.u, ours.u, atol=1e-6) and torch.allclose(theirs.v, ours.v, atol=1e-6)
