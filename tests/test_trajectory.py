"""Global / local / target rank-1 series against dense SVDs of the materialised deltas, and signs."""

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
