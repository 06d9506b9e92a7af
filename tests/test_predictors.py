"""Predictors on runs with known rank-1 dynamics, with bounds the math guarantees.

Runs: real PEFT adapters whose update is exactly σ(t)·u(t)·vᵀ, checkpoints every 10 steps from 10
to 100; backtest holds out the last 3 (the "known future"), NExt horizon 2.

- linear σ, fixed u, v: RELEX's window direction is u·vᵀ and c(t) is exactly linear, and two-point
  extrapolation is exact for evenly spaced linear motion → both errors are float32 round-off (< 1e-5).
- accelerating (convex) σ: the two-point prediction lies between W_T and the truth along the same
  direction → strictly better than stay.
- saturating σ = 5(1 − e^{−t/100}): increments shrink by r = e^{−0.1}; with k ≤ 3 checkpoints ahead
  the true increment exceeds half the predicted one (mean rⁱ > ½) → two-point still beats stay.
- slowly rotating u (ω = 0.01 rad/step): linear extrapolation error is second order in the step
  (≈ ½(kΔ)²‖G''‖ < kΔ‖G'‖ here) → beats stay. RELEX's single direction carries no such guarantee.
- NExt must beat stay on all four. Its learning rate is 3e-4 here: the paper's 2e-5 is tuned for
  vectors of length 1.5k–5k; these modules have length 16–48 (README reports both).
"""

import json

import pytest
from helpers import KNOWN_DYNAMICS, make_lora_run, raises_whole

from nextx import load_run
from nextx.backtesting import backtest
from nextx.errors import DeviceError, PredictorError
from nextx.fitting import fit, load_predictor, save_predictor
from nextx.lowrank import FactoredUpdate, update_inner
from nextx.predictors import REGISTRY, ModuleContext, Predictor, make_predictor

STEPS = list(range(10, 101, 10))
NEXT_LR = 3e-4


@pytest.fixture(scope="module")
def known_reports(tmp_path_factory, base_model):
    reports = {}
    for kind, dynamics in KNOWN_DYNAMICS.items():
        root = make_lora_run(tmp_path_factory.mktemp(kind) / "run", base_model, STEPS, dynamics=dynamics)
        reports[kind] = backtest(load_run(root), holdout=3, horizon=2, hparams={"next": {"lr": NEXT_LR}})
    return reports


def test_linear_dynamics_are_recovered_exactly_by_relex_and_linear(known_reports):
    methods = known_reports["linear"].methods
    assert methods["relex"]["rel_error"] < 1e-5
    assert methods["linear"]["rel_error"] < 1e-5
    assert methods["trend"]["rel_error"] < 1e-5  # a least-squares slope of exactly linear motion is exact


def test_trend_denoises_a_noisy_linear_run(tmp_path, base_model):
    """Linear motion plus independent noise at every checkpoint: the least-squares slope over 4
    checkpoints predicts the held-out ones better than the two-point difference (which doubles the
    last two checkpoints' noise)."""
    import zlib

    import torch

    clean = KNOWN_DYNAMICS["linear"]

    def noisy(step, name, factor, shape):
        value = clean(step, name, factor, shape)
        if factor == "B":
            g = torch.Generator().manual_seed(zlib.crc32(f"{name}/{step}".encode()))
            value = value + 0.15 * value.norm() / value.numel() ** 0.5 * torch.randn(shape, generator=g)
        return value

    run = load_run(make_lora_run(tmp_path / "run", base_model, STEPS, dynamics=noisy))
    methods = backtest(run, ["trend", "linear", "stay"], holdout=3, horizon=2).methods
    assert methods["trend"]["rel_error"] < methods["linear"]["rel_error"]
    assert methods["trend"]["rel_error"] < methods["stay"]["rel_error"]
    assert methods["stay"]["error_vs_stay"] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["accelerating", "saturating", "rotating"])
def test_two_point_linear_beats_stay_where_the_math_says(known_reports, kind):
    assert known_reports[kind].methods["linear"]["gain_over_stay"] > 0


@pytest.mark.parametrize("kind", sorted(KNOWN_DYNAMICS))
def test_next_beats_stay(known_reports, kind):
    methods = known_reports[kind].methods
    assert methods["next"]["rel_error"] < methods["stay"]["rel_error"]
    assert methods["next"]["cosine"] > 0.5


def test_backtest_report_schema(known_reports):
    report = known_reports["accelerating"].to_dict()
    assert set(report["methods"]) == set(REGISTRY)
    assert report["best"] == min(report["methods"], key=lambda m: report["methods"][m]["rel_error"])
    assert report["holdout_steps"] == [80, 90, 100] and report["fit_steps"] == STEPS[:7]
    for scores in report["methods"].values():
        assert {"rel_error", "cosine", "gain_over_stay", "error_vs_stay", "coef_scale", "per_step"} <= set(scores)
        assert set(scores["per_step"]) == {"80", "90", "100"}


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_predictor_contract(trl_run, method):
    """Every registered method: fits, predicts a finite update per module, α=0 (no offset) is W_T."""
    run = load_run(trl_run)
    predictor = fit(run, method, horizon=2, **({"epochs": 20} if method == "next" else {}))
    assert isinstance(predictor, Predictor) and predictor.name == method
    from nextx.lowrank import update_inner
    from nextx.trajectory import module_trajectory

    last = len(run.steps) - 1
    for name in list(run.modules)[:3]:
        stack = run.deltas(name)
        traj = module_trajectory(name, stack, run.steps, 0, ("global", "local"))
        prediction = predictor.predict(ModuleContext(name, stack, run.steps, last, traj))
        norm = update_inner(stack, prediction.direction, prediction.direction)
        assert norm == norm and norm >= 0  # finite, not NaN
    assert predictor.coef_for_step(run.steps[-1], run.steps) == 0


def test_next_is_deterministic_and_round_trips(trl_run, tmp_path):
    run = load_run(trl_run)
    first = fit(run, "next", horizon=2, epochs=30, seed=7)
    second = fit(run, "next", horizon=2, epochs=30, seed=7)
    assert first.fit_info["loss_curve"] == second.fit_info["loss_curve"]
    save_predictor(first, tmp_path / "pred")
    loaded = load_predictor(tmp_path / "pred")
    assert not list(tmp_path.glob("*.safetensors")) and (tmp_path / "pred" / "predictor.json").exists()
    from nextx.trajectory import module_trajectory

    name = "model.layers.1.mlp.up_proj"
    stack = run.deltas(name)
    ctx = ModuleContext(name, stack, run.steps, len(run.steps) - 1,
                        module_trajectory(name, stack, run.steps, 0, ("global", "local")))
    a, b = first.predict(ctx).direction.rank1[0], loaded.predict(ctx).direction.rank1[0]
    assert a[0] == pytest.approx(b[0]) and float(a[1] @ b[1]) == pytest.approx(1.0)
    assert a[0] >= 0 and float(a[1].norm()) == pytest.approx(1.0) and float(a[2].norm()) == pytest.approx(1.0)


def test_a_warm_next_fit_starts_from_the_previous_fits_mlps(trl_run):
    """warm_from: a warm fit's first-epoch loss (read before its first step) is where the previous fit on
    the same pairs ended (its last loss, one AdamW step later: within 10%), far below a cold fit's."""
    from nextx.choose import warm_fitter

    run = load_run(trl_run)
    first = fit(run, "next", horizon=2, epochs=40, lr=1e-3)
    warm = fit(run, "next", horizon=2, epochs=1, lr=1e-3, init=first)
    cold = fit(run, "next", horizon=2, epochs=1, lr=1e-3)
    def total(predictor, epoch):
        return sum(curve[epoch] for curve in predictor.fit_info["loss_curve"].values())

    assert total(warm, 0) == pytest.approx(total(first, -1), rel=0.1)
    assert total(warm, 0) < 0.5 * total(cold, 0) and total(cold, 0) == pytest.approx(total(first, 0))
    assert warm.fit_info["warm_groups"] == sorted(first.models) and cold.fit_info["warm_groups"] == []
    fitted: dict = {}
    fitter = warm_fitter(fitted)
    once, _ = fitter(run, "next", 2, {"epochs": 1}, None)
    twice, _ = fitter(run, "next", 2, {"epochs": 1}, None)
    assert fitted["next"] is twice and twice.fit_info["warm_groups"] and not once.fit_info["warm_groups"]


def test_next_groups_by_vector_length_or_type(trl_run):
    run = load_run(trl_run)
    by_length = fit(run, "next", horizon=2, epochs=2).fit_info["groups"]
    by_type = fit(run, "next", horizon=2, epochs=2, group_by="type").fit_info["groups"]
    assert set(by_length) == {"u:16", "u:32", "u:48", "v:32", "v:48", "sigma:1"}
    assert by_length["u:32"] == 6  # q, o, down of both layers share one predictor
    assert "u:q_proj:32" in by_type and len(by_type) > len(by_length)


def test_next_reports_every_training_epoch(trl_run):
    """epoch_progress is called once per epoch (the CLI's "training next" bar and its ETA)."""
    run = load_run(trl_run)
    ticks = []
    predictor = fit(run, "next", horizon=2, epochs=7, epoch_progress=lambda: ticks.append(1))
    assert len(ticks) == 7 == len(next(iter(predictor.fit_info["loss_curve"].values())))
    fit(run, "linear", epoch_progress=lambda: ticks.append(1))  # nothing to train: no ticks
    assert len(ticks) == 7


def test_unknown_method():
    from nextx.errors import PredictorError

    with raises_whole(PredictorError, "unknown method 'magic'. Choose one of: next, relex, linear, trend, rre, stay, auto."):
        make_predictor("magic")


def test_scores_survive_round_off_and_nan():
    """A method that predicts exactly can leave a Gram-expanded ‖error‖² of −1e-17: no crash, 0 error;
    NaN scores never win, and JSON never holds a bare NaN."""
    import json
    import math

    from nextx.backtesting import _scores, _Sums, best_method
    from nextx.io.write import dumps_json

    exact = _scores(_Sums(error=-1e-17, stay=4.0, actual=9.0, dot=4.0, predicted=4.0 - 1e-16))
    assert exact["rel_error"] == 0.0 and exact["error_vs_stay"] == 0.0 and exact["gain_over_stay"] == 1.0
    assert exact["coef_scale"] == pytest.approx(1.0) and exact["cosine"] == pytest.approx(1.0)
    broken = _scores(_Sums(error=float("nan"), stay=4.0, actual=9.0, dot=1.0, predicted=1.0))
    assert math.isnan(broken["rel_error"])
    methods = {"next": broken, "linear": {"rel_error": 0.5}, "stay": {"rel_error": 0.7}}
    assert best_method(methods) == "linear"
    assert best_method({"next": broken}) == "stay"
    assert json.loads(dumps_json({"next": broken}))["next"]["rel_error"] is None


@pytest.mark.parametrize("method,steps_per_alpha", [("next", 30.0), ("relex", 30.0), ("linear", 10.0), ("trend", 10.0)])
def test_steps_ahead_and_alpha_per_method(method, steps_per_alpha):
    """One unit for users (training steps); α is each method's own: next/relex horizons, linear/trend intervals."""
    predictor = make_predictor(method, horizon=3)
    steps = list(range(10, 81, 10))
    assert predictor.coef_for_ahead(steps_per_alpha, steps) == pytest.approx(1.0)
    assert predictor.ahead_for_coef(1.5, steps) == pytest.approx(1.5 * steps_per_alpha)
    assert predictor.coef_for_step(80 + 2 * steps_per_alpha, steps) == pytest.approx(2.0)


def test_next_epochs_auto_stops_when_the_loss_stalls_and_device_is_recorded(trl_run):
    """epochs="auto": at most 1000, stopping once 50 epochs improve the loss by < 0.1%; the device is
    resolved (auto → CUDA when present) and reported; predictions are unchanged by where it trained."""
    from nextx.devices import resolve_device
    from nextx.predictors.next import AUTO_PATIENCE

    run = load_run(trl_run)
    predictor = fit(run, "next", horizon=2, epochs="auto", lr=1e-2, device="auto")
    info = predictor.fit_info
    assert info["device"] == str(resolve_device("auto")) and AUTO_PATIENCE < info["epochs_run"] <= 1000
    curve = [sum(v[i] for v in info["loss_curve"].values()) for i in range(info["epochs_run"])]
    if info["epochs_run"] < 1000:  # stopped: the last 50 epochs gained < 0.1% over the best before them
        assert min(curve[-AUTO_PATIENCE:]) > 0.999 * min(curve[:-AUTO_PATIENCE])
    with raises_whole(DeviceError, "unknown device 'gpu0'. Choose auto, cpu, cuda, cuda:N or mps."):
        fit(run, "next", horizon=2, epochs=2, device="gpu0")
    with raises_whole(PredictorError, "epochs must be a positive integer or 'auto', not 'many'."):
        fit(run, "next", horizon=2, epochs="many")


def converging_dynamics(step: int, name: str, factor: str, shape: tuple[int, int]):
    """s·B·A = Σ_m a_m·(1 − r_mᵗ)·u_m·v_mᵀ, two modes converging at different rates (r per 10 steps)."""
    import zlib

    import torch

    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if factor == "A":
        return torch.linalg.qr(torch.randn(shape[1], shape[0], generator=g))[0].T  # orthonormal rows v_m
    u = torch.linalg.qr(torch.randn(shape[0], shape[1], generator=g))[0]
    B = torch.zeros(shape)
    for m, (a, r) in enumerate(((3.0, 0.8), (1.5, 0.6))):
        B[:, m] = a * (1 - r ** (step / 10)) / 2.0 * u[:, m]  # / 2: the LoRA scale α/r = 8/4
    return B


def test_rre_recovers_the_limit_of_converging_dynamics_exactly(tmp_path, base_model):
    """Two geometric modes, a window of 4 differences: RRE's α = 1 is the sequence's limit (dense
    float64 check, relative to the limit's norm, 1e-4: the checkpoints are float32)."""
    import torch

    from nextx.lowrank import dense_of

    run = load_run(make_lora_run(tmp_path / "run", base_model, STEPS, dynamics=converging_dynamics))
    predictor = fit(run, "rre")
    last = len(run.steps) - 1
    far = {}
    for name in list(run.modules)[:4]:
        stack = run.deltas(name)
        predicted = dense_of(stack, predictor.predict(ModuleContext(name, stack, run.steps, last)).at(1.0, last),
                             torch.float64)
        shapes = {f: tuple(stack.right(0).shape if f == "A" else stack.left(0).shape) for f in "AB"}
        limit_b = converging_dynamics(10**6, name, "B", (shapes["B"][0], 4))
        limit = 2.0 * limit_b.double() @ converging_dynamics(0, name, "A", (4, shapes["A"][1])).double()
        far[name] = float((predicted - limit).norm() / limit.norm())
        stay = float((dense_of(stack, FactoredUpdate({last: 1.0}), torch.float64) - limit).norm() / limit.norm())
        assert far[name] < 1e-4 < stay
    assert predictor.horizon_steps(run.steps) == 40.0  # α = 1 ≡ the window's 4 intervals


def test_rre_on_constant_velocity_steps_back_to_the_window_mean(tmp_path, base_model):
    """No limit to find: RRE returns the mean of the window's last k checkpoints (documented)."""
    run = load_run(make_lora_run(tmp_path / "run", base_model, STEPS, dynamics=KNOWN_DYNAMICS["linear"]))
    name = next(iter(run.modules))
    stack = run.deltas(name)
    last = len(run.steps) - 1
    prediction = make_predictor("rre").predict(ModuleContext(name, stack, run.steps, last))
    expected = FactoredUpdate({i: 0.25 for i in range(last - 3, last + 1)}) - FactoredUpdate({last: 1.0})
    error = prediction.direction - expected
    assert update_inner(stack, error, error) < 1e-8 * update_inner(stack, expected, expected)


def test_methods_declare_their_settings(cli_runner, trl_run):
    """Each method's `params` is the one place its settings live: unknown ones are refused with the
    list, a flat dict splits per method, and every declared flag reaches the CLI and the method."""
    from nextx.cli.main import cli
    from nextx.predictors import by_method

    with raises_whole(PredictorError, "unknown trend hyper-parameter(s): lr. trend takes: window.") as err:
        make_predictor("trend", lr=1.0)
    assert err.value.hint == "trend takes: window."
    with raises_whole(PredictorError, "group_by must be one of length, type, not 'rows'."):
        make_predictor("next", group_by="rows")
    split = by_method({"lr": 3e-4, "window": 6})
    assert split["next"] == {"lr": 3e-4} and split["trend"] == split["rre"] == {"window": 6} and split["linear"] == {}
    assert make_predictor("rre").hparams == {"window": 4}
    result = cli_runner.invoke(cli, ["backtest", str(trl_run), "--methods", "trend,linear", "--holdout", "2",
                                     "--trend-window", "2", "--json"])  # a 2-checkpoint trend is `linear`
    assert result.exit_code == 0, result.output
    methods = json.loads(result.stdout)["methods"]
    assert methods["trend"]["rel_error"] == pytest.approx(methods["linear"]["rel_error"], rel=1e-9)
    result = cli_runner.invoke(cli, ["backtest", str(trl_run), "--methods", "trend", "--trend-window", "0"])
    assert result.exit_code == 2 and "'0' is not a positive integer" in result.output
    flags = {p.option for cls in REGISTRY.values() for p in cls.params if p.option}
    help_text = cli_runner.invoke(cli, ["backtest", "--help"]).output
    assert flags and all(flag in help_text for flag in flags)


def test_next_fit_dtype_bfloat16_trains_and_is_recorded(trl_run):
    """--fit-dtype bfloat16: autocast matmuls; the fit still learns (loss falls) and says how it ran."""
    run = load_run(trl_run)
    info = {dtype: fit(run, "next", horizon=2, epochs=40, lr=1e-3, fit_dtype=dtype).fit_info
            for dtype in ("float32", "bfloat16")}
    for dtype, fitted in info.items():
        curve = [sum(v[i] for v in fitted["loss_curve"].values()) for i in range(40)]
        assert fitted["fit_dtype"] == dtype and curve[-1] < 0.9 * curve[0]
    with raises_whole(PredictorError, "fit_dtype must be one of float32, bfloat16, not 'float16'."):
        make_predictor("next", fit_dtype="float16")
