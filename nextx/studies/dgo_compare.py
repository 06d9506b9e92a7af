"""GRPO vs DGO on the embedded task, paired by seed, with the steps-saved measure (`nextx.studies.measure`).

For each seed, from the same base (the tiny model that reads experience lines) and the same clip-higher:
1. GRPO for K·S steps, a checkpoint every ``save_every``;
2. DGO: K iterations of S RL steps (`train_dgo`); its checkpoint s of iteration k is at RL step (k−1)·S + s;
3. exact accuracy of every checkpoint on the task's test population, plain prompts (the paper's
   "zero" setting: no experience at test time); DGO's final policy also with experiences retrieved
   from its final bank ("guided", one round);
4. steps saved = DGO's checkpoints mapped onto GRPO's isotonic curve (as for a jump at step 0), the
   paired accuracy difference at equal RL steps, and the final accuracies; means with 95% intervals.
The SFT steps of distillation are not counted as RL steps (the wall-clock figure counts them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nextx.io.write import json_safe
from nextx.studies.demo import headline_text
from nextx.studies.measure import Interval, seed_savings, summarize
from nextx.train.config import GRPORunConfig
from nextx.train.dgo.bank import BANK_FILE, ExperienceBank
from nextx.train.dgo.loop import guided_accuracy, last_checkpoint, prompt_style, train_dgo
from nextx.train.dgo.retrieval import embedder
from nextx.train.grpo import train
from nextx.train.runs import evaluate_run, load_for_eval
from nextx.train.tasks import get_task
from nextx.train.tiny_model import tiny_model_path

DEMO_STEPS = 100  # RL steps per DGO iteration in `nextx demo --algo dgo` (GRPO gets K times as many)


def prepare_bench(out: Path | None, set_values: list[str], steps: int, prefix: str) -> tuple[Path, dict]:
    """A DGO bench's run folder (``out`` or a new temp dir) and settings: the demo's, ``--set``
    FIELD=VALUE, no jump, ``steps`` RL steps per iteration; the experience-reading model built once,
    before the workers."""
    import tempfile

    from nextx.studies.demo import DemoConfig
    from nextx.studies.options import with_settings

    root = out or Path(tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    settings = {**with_settings(DemoConfig(), set_values).settings(), "next_at": None, "next_ahead": None,
                "steps": steps}
    tiny_model_path(settings["task"], experiences=True)
    return root, settings


def run_pair(out: Path, settings: dict, seed: int, log=print, console=None) -> dict:
    """One seed's GRPO and DGO runs, scored: {"curves": {"grpo", "dgo"}, "guided", "seconds"}."""
    task = get_task(settings.get("task") or "addition")
    dgo = GRPORunConfig(output_dir=str(out / "dgo"), **{**settings, "algo": "dgo", "seed": seed})
    base = str(tiny_model_path(dgo.task, experiences=True, log=log))
    total = dgo.steps * dgo.dgo_iterations
    grpo = GRPORunConfig(output_dir=str(out / "grpo"), **{**settings, "algo": "grpo", "seed": seed, "model": base,
                                                          "steps": total, "epsilon_high": dgo.clip_high()})
    seconds = {}
    log(f"seed {seed}: GRPO, {total} steps")
    start = time.perf_counter()
    train(grpo, log=log, console=console)
    seconds["grpo"] = time.perf_counter() - start
    log(f"seed {seed}: DGO, {dgo.dgo_iterations} iterations of {dgo.steps} steps")
    start = time.perf_counter()
    result = train_dgo(dgo, log=log, console=console)
    seconds["dgo"] = time.perf_counter() - start
    final_run, record = result.path, result.record
    curves = {"grpo": evaluate_run(out / "grpo", task, base, population=True)}
    curve = {0: curves["grpo"][0]}
    for k, step in enumerate(record["iterations"]):
        scored = evaluate_run(Path(step["run"]), task, step["model"], population=True, only=lambda s: s > 0)
        curve.update({k * dgo.steps + s: accuracy for s, accuracy in scored.items()})
    curves["dgo"] = curve
    policy, tokenizer = load_for_eval(last_checkpoint(final_run), record["iterations"][-1]["model"])
    guided = guided_accuracy(policy, tokenizer, task, task.test_population() or task.eval_split(),
                             ExperienceBank.load(out / "dgo" / BANK_FILE, embedder(dgo.dgo_retriever)),
                             k=dgo.dgo_experiences,
                             style=prompt_style(dgo)).accuracy
    return {"curves": curves, "guided": guided, "seconds": seconds}


def compare(out: Path, settings: dict, seeds: tuple[int, ...], log=print, console=None) -> dict:
    """Every seed's pair, the measure over seeds; ``out/report.json``."""
    results = {str(seed): run_pair(out / f"seed{seed}", settings, seed, log, console) for seed in seeds}
    report = build_dgo_report(settings, results)
    (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False))
    return report


def build_dgo_report(settings: dict, results: dict[str, dict]) -> dict:
    """The measure over seeds from each seed's `run_pair` result."""
    per_seed = [seed_savings(r["curves"]["grpo"], r["curves"]["dgo"], 0) for r in results.values()]
    summary = summarize(per_seed, [r["seconds"]["dgo"] for r in results.values()])
    final = {s: max(r["curves"]["dgo"]) for s, r in results.items()}
    plain = Interval.of([r["curves"]["dgo"][final[s]] - r["curves"]["grpo"][final[s]] for s, r in results.items()])
    guided = Interval.of([r["guided"] - r["curves"]["grpo"][final[s]] for s, r in results.items()])
    report = {
        "settings": settings, "seeds": [int(s) for s in results], "summary": summary,
        "final_accuracy_delta": plain.to_dict(), "final_guided_accuracy_delta": guided.to_dict(),
        "final_accuracy": {s: {"grpo": r["curves"]["grpo"][final[s]], "dgo": r["curves"]["dgo"][final[s]],
                               "dgo_guided": r["guided"]} for s, r in results.items()},
        "accuracy": {s: {arm: {str(k): v for k, v in sorted(c.items())} for arm, c in r["curves"].items()}
                     for s, r in results.items()},
        "wall_seconds": {arm: Interval.of([r["seconds"][arm] for r in results.values()]).to_dict()
                         for arm in ("grpo", "dgo")},
        "per_seed": {s: p.to_dict() for s, p in zip(results, per_seed, strict=True)},
        "headline": (f"{headline_text('dgo vs grpo', summary)} Final accuracy vs GRPO: plain {plain.points()}; "
                     f"with experiences at test time {guided.points()}."),
    }
    return json_safe(report)

