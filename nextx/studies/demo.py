"""`nextx demo` (and `bench/steps_saved.py`): does a jump save RLVR steps? Paired runs, an interval.

For each seed:
1. vanilla GRPO for ``steps`` steps on the embedded tiny model, a checkpoint every ``save_every``;
2. one run per arm, identical to vanilla up to the jump (same seed, data order, every step before
   it), jumping right after the checkpoint at ``next_at`` (arms: a method jumping ``next_ahead``
   steps ahead, or "reward": the candidate that beats staying on the validation prompts, or none);
3. exact accuracy of every checkpoint on the task's test population (all prompts minus the
   validation ones: no sampling noise). An arm's checkpoints before the jump are vanilla's (the
   checkpoint at the jump is scored in both, as a check of the pairing);
4. `nextx.studies.measure`: each post-jump checkpoint mapped to the vanilla step of equal accuracy
   (isotonic fit of vanilla's curve); steps saved per seed, then the mean with a 95% interval over
   seeds, the paired accuracy difference, and wall-clock (jump time included).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from nextx.errors import NextxError
from nextx.io.write import json_safe
from nextx.studies.arms import ARMS, DEMO_ARMS, DEMO_SEEDS, arm_settings, is_peer
from nextx.studies.measure import Interval, interval_from_dict, seed_savings, summarize, target_savings
from nextx.studies.parallel import map_seeds
from nextx.threads import free_cores
from nextx.train.config import GRPORunConfig, RunSettings
from nextx.train.grpo import train
from nextx.train.runs import evaluate_run
from nextx.train.tasks import get_task
from nextx.train.tiny_model import tiny_model_path


@dataclass
class DemoConfig(RunSettings):
    """The demo: every GRPO setting (`RunSettings`, with the demo's own defaults below) plus the seeds
    and arms; each run's `GRPORunConfig` is derived from it (`run_config`)."""

    steps: int = 400
    save_every: int = 25
    next_at: int | None = 150
    next_ahead: float | str | None = 100.0  # training steps past the checkpoint at next_at
    next_lr: float | None = 3e-4  # NExt predictor lr for 96–256-long vectors (the paper's 2e-5 suits 1.5k–5k)
    seeds: tuple[int, ...] = DEMO_SEEDS
    arms: tuple[str, ...] = DEMO_ARMS

    def check(self) -> None:
        """NextxError for a demo that cannot measure anything."""
        if self.next_at is None or self.steps <= self.next_at:
            raise NextxError(f"--steps {self.steps} leaves no step after the jump at step {self.next_at}",
                             hint=f"Train longer than the jump: --steps {(self.next_at or 0) + 4 * self.save_every} or more.")
        if not self.seeds:
            raise NextxError("the demo needs at least one seed")
        for arm in self.arms:
            try:
                arm_settings(arm)
            except ValueError as err:
                raise NextxError(str(err), hint=f"Choose from: {', '.join(ARMS)} (NAME:KEY=VALUE:... overrides "
                                                "its jump settings).") from None

    def settings(self) -> dict:
        """The GRPO settings of every run (the demo's fields that are not RunSettings' are left out)."""
        names = {f.name for f in fields(RunSettings)}
        return {k: v for k, v in asdict(self).items() if k in names}

    def run_config(self, out: Path, seed: int, arm: str | None = None) -> GRPORunConfig:
        """Vanilla (``arm`` None: no jump) or an arm's run for ``seed``, written to ``out``."""
        settings = {**self.settings(), "seed": seed, "next_at": None}
        if arm is None:
            return GRPORunConfig(output_dir=str(out), **settings)
        if is_peer(arm):  # as many rollout batches as vanilla has steps, a checkpoint every save_every of them
            own = arm_settings(arm)
            peer = {**settings, **own}
            counted = ["steps", "save_every"]
            if "next_method" in own:  # a peer with jumps: from the demo's jump step, counted in rollout batches
                peer["next_at"] = own.get("next_at") or self.next_at
                counted += ["next_at", "next_every", "next_ahead"]
            per = GRPORunConfig(output_dir=str(out), **{**peer, "next_at": None}).updates_per_rollout()
            return GRPORunConfig(output_dir=str(out), **{**peer, **{k: peer[k] * per for k in counted}})
        jump = arm_settings(arm)
        if jump["next_ahead"] is None:
            jump["next_ahead"] = self.next_ahead
        elif jump["next_ahead"] == "grid":
            jump["next_ahead"] = None
        return GRPORunConfig(output_dir=str(out), **{**settings, "next_at": self.next_at, **jump})

    def jump_step(self, arm: str) -> int:
        """The step of the arm's first jump: its own ``at``, else the demo's ``next_at`` (a peer: 0)."""
        if is_peer(arm):
            return 0
        return arm_settings(arm).get("next_at") or self.next_at


def base_model(config: DemoConfig, log=print) -> Path:
    """What every run starts from: ``config.model`` (a local model directory), else the task's
    embedded tiny model (built once)."""
    return Path(config.model) if config.model else tiny_model_path(config.task, log=log)


def run_seed(out: Path, config: DemoConfig, seed: int, log=print, console=None) -> dict:
    """One seed: vanilla and every arm trained and scored; {"curves", "seconds", "clocks", "jumps"} by arm
    (a peer's steps counted in rollout batches)."""
    task = get_task(config.task)
    base = base_model(config, log)
    curves, seconds, clocks, jumps = {}, {}, {}, {}
    for arm in (None, *config.arms):
        name = arm or "vanilla"
        run_dir = out / f"seed{seed}" / name
        at = config.jump_step(arm) if arm else None
        log(f"seed {seed}: {name} GRPO, {config.steps} steps" + (f", jump at step {at}" if arm else ""))
        start = time.perf_counter()
        run_config = config.run_config(run_dir, seed, arm)
        result = train(run_config, log=log, console=console)
        jumps[name], seconds[name] = result.jumps, time.perf_counter() - start
        per = run_config.updates_per_rollout()
        clocks[name] = {step // per: t for step, t in result.save_seconds.items()}
        only = None if arm is None else (lambda step, at=at: step >= at)
        curve = {step // per: a for step, a in evaluate_run(run_dir, task, base, population=True, only=only).items()}
        if arm is not None:  # before the jump the arm is the vanilla run
            curve = {**{s: a for s, a in curves["vanilla"].items() if s < at}, **curve}
        curves[name] = curve
    return {"curves": curves, "seconds": seconds, "clocks": clocks, "jumps": jumps}


def run_demo(out: Path, config: DemoConfig = DemoConfig(), log=print, console=None, jobs: int | None = None) -> dict:
    """Vanilla and every arm for every seed — ``jobs`` seeds at a time in their own processes (default:
    the free cores), one torch thread per run either way (results are bit-identical whatever the
    parallelism) — the measure; out/report.json (+ accuracy.png)."""
    config.check()
    jobs = min(len(config.seeds), jobs or free_cores())
    if jobs <= 1:  # one thread too, so a seed's result does not depend on how many ran beside it
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results = {str(seed): run_seed(out, config, seed, log, console) for seed in config.seeds}
        finally:
            torch.set_num_threads(threads)
        return write_report(out, config, results, log)
    base_model(config, log)  # built once, before the workers
    log(f"{len(config.seeds)} seeds × {1 + len(config.arms)} runs, {jobs} seeds at a time (one thread each)")
    results = {}
    for seed, result in map_seeds(quiet_seed, config.seeds, jobs, out, config):
        results[str(seed)] = result
        log(f"seed {seed} done: final exact accuracy " + ", ".join(
            f"{arm} {curve[max(curve)]:.1%}" for arm, curve in result["curves"].items()))
    return write_report(out, config, results, log)


def quiet_seed(out: Path, config: DemoConfig, seed: int) -> dict:
    """`run_seed` without log lines (the parallel workers')."""
    return run_seed(out, config, seed, log=_silent)


def _silent(message: str) -> None:
    pass


def write_report(out: Path, config: DemoConfig, results: dict[str, dict], log=print) -> dict:
    """report.json and accuracy.png from every seed's `run_seed` result."""
    task = get_task(config.task)
    report = build_report(config, {s: r["curves"] for s, r in results.items()},
                          {s: r["seconds"] for s, r in results.items()}, {s: r["jumps"] for s, r in results.items()},
                          {s: r["clocks"] for s, r in results.items()})
    report["base_model"] = str(base_model(config, log))
    population = task.test_population()
    report["evaluation"] = {"prompts": len(population) if population else len(task.eval_split()),
                            "exact": population is not None,
                            "what": "the task's whole prompt population minus the validation prompts" if population
                            else "the 500-prompt held-out split"}
    (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False))
    try:
        from nextx.studies.plot import plot_demo

        plot_demo(report, out / "accuracy.png")
    except Exception as err:  # noqa: BLE001 - the plot is optional (extra `plot`)
        log(f"no plot: {err}")
    return report


def build_report(config: DemoConfig, curves: dict, seconds: dict, jumps: dict, clocks: dict) -> dict:
    """The measure for every arm over seeds, from curves[seed][arm] = {step: accuracy} and
    clocks[seed][arm] = {step: seconds since training began}."""
    arms = {}
    for arm in config.arms:
        at = config.jump_step(arm)
        per_seed = [seed_savings(curves[s]["vanilla"], curves[s][arm], at) for s in curves]
        to_target = [target_savings(curves[s]["vanilla"], curves[s][arm], clocks[s]["vanilla"], clocks[s][arm])
                     for s in curves]
        summary = summarize(per_seed, [seconds[s][arm] for s in curves], to_target)
        paired_check = (all(curves[s][arm].get(at) == curves[s]["vanilla"].get(at) for s in curves)
                        if at else None)  # a peer differs from its first step
        arms[arm] = {
            "steps_saved": summary["steps_saved"]["mean"], "steps_saved_ci95": summary["steps_saved"]["ci95"],
            "steps_saved_pct": summary["steps_saved_pct"]["mean"],
            "steps_saved_pct_ci95": summary["steps_saved_pct"]["ci95"],
            "paired_accuracy_delta": summary["paired_accuracy_delta"],
            "wall_seconds": summary["wall_seconds"]["mean"],
            "jumped": sum(any(j.get("jumped", True) for j in jumps[s][arm]) for s in curves),
            "identical_before_jump": paired_check, "summary": summary,
            "per_seed": {s: {**p.to_dict(), "to_target": t.to_dict()}
                         for s, p, t in zip(curves, per_seed, to_target, strict=True)},
        }
    vanilla_seconds = Interval.of([seconds[s]["vanilla"] for s in curves]).mean
    headline = config.arms[0]
    report = {
        "config": asdict(config), "seeds": list(config.seeds), "headline_arm": headline,
        "accuracy": {s: {a: {str(k): v for k, v in sorted(c.items())} for a, c in arms_.items()}
                     for s, arms_ in curves.items()},
        "arms": arms, "vanilla_wall_seconds": vanilla_seconds, "jumps": jumps,
        "steps_saved": arms[headline]["steps_saved"], "steps_saved_ci95": arms[headline]["steps_saved_ci95"],
        "paired_accuracy_delta": arms[headline]["paired_accuracy_delta"],
        "wall_seconds": {"vanilla": vanilla_seconds, **{a: arms[a]["wall_seconds"] for a in arms}},
        "headline": headline_text(headline, arms[headline]["summary"]),
    }
    return json_safe(report)


def headline_text(arm: str, summary: dict) -> str:
    """One sentence with the interval, never a bare point estimate."""
    steps = interval_from_dict(summary["steps_saved"])
    delta = interval_from_dict(summary["paired_accuracy_delta"])
    if steps.n < 2:
        return (f"{arm}: {steps.mean:+.0f} steps saved on 1 seed — an anecdote, not a measurement "
                f"(run more seeds: --seeds 0 1 2 3 4).")
    verdict = ("saves steps" if steps.low > 0 else "costs steps" if steps.high < 0
               else "no difference from vanilla resolved")
    return (f"{arm}: {verdict} — steps saved {steps.text(digits=0)}; accuracy vs vanilla at equal steps "
            f"{delta.points()}.")
