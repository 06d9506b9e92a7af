"""The trainer-neutral jump engine with a test double that is not TRL, not PEFT and not a torch module:
a new integration needs only `LiveModel`'s five members. Tolerance: 1e-10 (float64 factors)."""

import pytest
import torch

from nextx.io.run import ModuleSpec
from nextx.jump import FactorHistory, JumpEngine, JumpPace


class DictModel:
    """A 'trainer' keeping W₀ and LoRA factors in dicts; the optimizer state is a dict too."""

    device = "cpu"

    def __init__(self, shapes: dict[str, tuple[int, int]], rank: int = 2, scaling: float = 0.5, transposed=False,
                 speed=lambda step: 0.01 + 0.002 * step):
        g = torch.Generator().manual_seed(0)
        self.speed = speed
        self.scaling, self.transposed = scaling, transposed
        self.base = {n: torch.randn(s, generator=g, dtype=torch.float64) for n, s in shapes.items()}
        stored = {n: (s[::-1] if transposed else s) for n, s in shapes.items()}  # B·A's shape
        self.A = {n: torch.randn(rank, s[1], generator=g, dtype=torch.float64) for n, s in stored.items()}
        self.B = {n: torch.zeros(s[0], rank, dtype=torch.float64) for n, s in stored.items()}
        self.directions = {n: torch.randn(s[0], rank, generator=g, dtype=torch.float64) for n, s in stored.items()}
        self.optimizer_state = {"moments": 1}

    def train_step(self, step: int) -> None:
        for name in self.B:  # B moves along a fixed direction, quadratically in time
            self.B[name] += self.speed(step) * self.directions[name]

    def effective(self, name: str) -> torch.Tensor:
        update = self.scaling * self.B[name] @ self.A[name]
        return self.base[name] + (update.T if self.transposed else update)

    # -- LiveModel ---------------------------------------------------------------------------
    def specs(self):
        return {n: ModuleSpec(n, tuple(w.shape), self.A[n].shape[0], self.scaling, transposed=self.transposed)
                for n, w in self.base.items()}

    def factors(self, name):
        return self.A[name], self.B[name]

    def add_to_base(self, name, left, right):
        self.base[name] += left.double() @ right.double()

    def write_factors(self, name, A, B):
        self.A[name], self.B[name] = A.double().clone(), B.double().clone()

    def reset_optimizer(self):
        self.optimizer_state.clear()


def _train(model, engine, steps: int, save_every: int, snapshots: dict):
    for step in range(1, steps + 1):
        model.train_step(step)
        if step % save_every == 0:
            snapshots[step] = {n: model.effective(n).clone() for n in model.base}
            engine.observe(step, model)
            engine.maybe_jump(step, steps, model)
            snapshots[f"after {step}"] = {n: model.effective(n).clone() for n in model.base}


@pytest.mark.parametrize("transposed", [False, True])
def test_offset_jumps_through_the_small_interface_are_exact_and_keep_the_optimizer(transposed):
    model = DictModel({"a": (5, 4), "b": (3, 6)}, transposed=transposed)
    engine = JumpEngine(JumpPace(at=4, every=2, damping=0.5), method="linear", ahead=2, horizon=1)
    w0 = {n: w.clone() for n, w in model.base.items()}
    seen = {}
    _train(model, engine, steps=8, save_every=2, snapshots=seen)
    assert [(j["step"], j["jumped"], round(j["coef"], 9)) for j in engine.jumps] == [(4, True, 1.0), (6, True, 0.5)]
    for name in model.base:  # Ŵ = W_T + α·(W_T − W_{T−1}), with the live weights the trainer had
        assert torch.allclose(seen["after 4"][name], seen[4][name] + (seen[4][name] - seen[2][name]), atol=1e-10)
        assert torch.allclose(seen["after 6"][name], seen[6][name] + 0.5 * (seen[6][name] - seen[4][name]), atol=1e-10)
        assert torch.allclose(seen["after 2"][name], seen[2][name], atol=0)  # nothing before T
        offset = engine.offsets[name][0].double() @ engine.offsets[name][1].double()  # float32 factors
        assert torch.allclose(model.base[name] - w0[name], offset, atol=1e-6)  # the record = what moved W₀
    assert model.optimizer_state == {"moments": 1}  # offset jumps keep Adam's moments
    assert engine.history.steps == [2, 4, 6, 8] and engine.made() == engine.jumps


def test_a_prediction_of_no_motion_is_recorded_as_no_jump():
    """A method whose Ŵ is W_T (here "stay"; NExt when its σ head predicts ≤ 0) changes no module: the
    record says no jump, with why — else every later checkpoint would be read as missing its offset."""
    model = DictModel({"a": (5, 4)})
    engine = JumpEngine(JumpPace(at=4, every=2), method="stay", ahead=2, horizon=1)
    w0 = model.base["a"].clone()
    _train(model, engine, steps=8, save_every=2, snapshots={})
    assert [(j["step"], j["jumped"]) for j in engine.jumps] == [(4, False), (6, False)] and engine.made() == []
    assert all("no module moves" in j["reason"] for j in engine.jumps)
    assert engine.offsets == {} and engine.additions == [] and torch.equal(model.base["a"], w0)


def test_refactor_and_merge_reset_the_optimizer_and_land_on_the_jump():
    for apply in ("refactor", "merge"):
        model = DictModel({"a": (6, 5)}, rank=2)
        engine = JumpEngine(JumpPace(at=4), method="linear", ahead=2, horizon=1, apply=apply)
        seen = {}
        _train(model, engine, steps=6, save_every=2, snapshots=seen)
        expected = seen[4]["a"] + (seen[4]["a"] - seen[2]["a"])  # rank ≤ 2 change: exact at rank 2 too
        assert torch.allclose(seen["after 4"]["a"], expected, atol=1e-10), apply
        assert model.optimizer_state == {}, apply


def test_history_is_the_live_weights_at_each_recorded_step_and_a_run_reads_them():
    model = DictModel({"a": (4, 3)})
    history = FactorHistory()
    for step in (1, 2, 3):
        model.train_step(step)
        history.record(step, model, {})
    model.train_step(4)  # training goes on: the history keeps copies
    run = history.run()
    assert run.steps == [1, 2, 3] and run.kind == "lora" and list(run.modules) == ["a"]
    stack = run.deltas("a")
    from nextx.lowrank import FactoredUpdate, dense_of

    assert torch.allclose(dense_of(stack, FactoredUpdate({2: 1.0})) + model.base["a"],
                          model.base["a"] + model.scaling * _replay(3), atol=1e-10)


def _replay(step: int) -> torch.Tensor:
    model = DictModel({"a": (4, 3)})
    for s in range(1, step + 1):
        model.train_step(s)
    return model.B["a"] @ model.A["a"]


def test_pace_and_apply_are_checked():
    from helpers import raises_whole

    with raises_whole(ValueError, "damping must be in (0, 1], not 0"):
        JumpPace(at=2, damping=0)
    with raises_whole(ValueError, "apply must be one of offset, refactor, merge, not 'fold'"):
        JumpEngine(JumpPace(at=2), apply="fold")
    pace = JumpPace(at=10, every=5)
    assert [s for s in range(30) if pace.due(s, max_steps=25)] == [10, 15, 20]


def test_trained_velocity_extrapolates_the_training_path_not_the_previous_jump():
    """velocity="trained": the second jump reads W₆ − W₄ without the first jump's offset (no feedback)."""
    model = DictModel({"a": (5, 4)})
    engine = JumpEngine(JumpPace(at=4, every=2, damping=0.5), method="linear", ahead=2, horizon=1, velocity="trained")
    seen = {}
    _train(model, engine, steps=8, save_every=2, snapshots=seen)
    first = seen["after 4"]["a"] - seen[4]["a"]
    assert torch.allclose(first, seen[4]["a"] - seen[2]["a"], atol=1e-10)
    trained_motion = (seen[6]["a"] - first) - seen[4]["a"]
    assert torch.allclose(seen["after 6"]["a"], seen[6]["a"] + 0.5 * trained_motion, atol=1e-10)
    assert not torch.allclose(trained_motion, seen[6]["a"] - seen[4]["a"])  # the total path would differ
    from helpers import raises_whole

    with raises_whole(ValueError, "velocity must be one of total, trained (trained: not with apply='merge'), not "
                                  "'trained'"):
        JumpEngine(JumpPace(at=2), apply="merge", velocity="trained")


@pytest.mark.parametrize(("speed", "rho", "next_coef"), [
    (lambda step: 0.01, 1.0, 1.5),  # exactly linear: training went on as predicted → the next jump grows ×1.5
    (lambda step: 0.01 if step <= 4 else -0.01, -1.0, 0.5),  # it turned back → the next jump shrinks ×0.5
])
def test_adaptive_pace_grows_on_linear_dynamics_and_shrinks_on_a_reversal(speed, rho, next_coef):
    model = DictModel({"a": (5, 4), "b": (3, 6)}, speed=speed)
    engine = JumpEngine(JumpPace(at=4, every=2), method="linear", ahead=2, horizon=1, adaptive=True)
    _train(model, engine, steps=8, save_every=2, snapshots={})
    first, second = engine.jumps[:2]
    assert first["realised_ratio"] == pytest.approx(rho, abs=1e-9)
    assert (first["coef"], second["coef"]) == (pytest.approx(1.0), pytest.approx(next_coef))


@pytest.mark.parametrize(("after", "verdict"), [([0.10, 0.12], "rolled back"), ([0.50, 0.53], "accepted")])
def test_verification_rolls_a_jump_back_exactly_when_the_reward_falls(after, verdict):
    model = DictModel({"a": (5, 4)}, speed=lambda step: 0.01)
    engine = JumpEngine(JumpPace(at=4), method="linear", ahead=2, horizon=1, verify=2)
    w0 = model.base["a"].clone()
    rewards = dict(zip(range(1, 7), [0.50, 0.52, 0.51, 0.50, *after], strict=True))
    for step in range(1, 7):
        model.train_step(step)
        if step % 2 == 0:
            engine.observe(step, model)
            engine.maybe_jump(step, 10, model)
        engine.observe_reward(step, rewards[step], model)
    record = engine.jumps[0]
    assert record["verified"] == verdict and record["verified_at"] == 6
    moved = float((model.base["a"] - w0).norm())
    if verdict == "rolled back":
        assert moved < 1e-12 and engine.feedback.scale == 0.5  # W₀ exactly back, the pace shrunk
        left, right = engine.feedback.pending["changes"]["a"]
        residual = engine.offsets["a"][0].double() @ engine.offsets["a"][1].double()
        assert float(residual.norm()) < 1e-6 * float((left @ right).norm())  # the offset record: float32 zero
    else:
        assert moved > 1e-3 and engine.feedback.scale == 1.0
