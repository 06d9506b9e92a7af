"""What DGO's gain is made of, on the embedded task, paired by seed (bench/dgo_ablation.py).

Per seed, from the same experience-reading base and clip-higher:
1. GRPO for ``grpo_factor`` × K·S steps (a checkpoint every ``save_every``, its clock recorded);
2. each arm — DGO (``none``), its ablations (`nextx.train.dgo.loop.ABLATIONS`: the paper's Table 3
   plus rejection-sampling fine-tuning) and `EXTRA_ARMS` —
   for K iterations of S RL steps, timed by its record (each iteration's seconds); a finished run
   found in the folder is reused, so a bench stopped half-way goes on where it was;
3. each arm's final policy scored exactly on the task's test population: plain prompts ("zero") and
   over ``tts_rounds`` rounds of experience-guided test-time scaling from its final bank (`tts`;
   renewal reads validation prompts only);
4. GRPO scored at K·S steps (equal RL steps) and at its last checkpoint saved before each arm's
   wall-clock (equal wall-clock).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nextx.io.write import atomic_write_text, json_safe
from nextx.studies.arms import ARMS as ARM_JUMPS
from nextx.studies.measure import Interval
from nextx.train.config import GRPORunConfig
from nextx.train.dgo.bank import BANK_FILE, ExperienceBank
from nextx.train.dgo.loop import ABLATIONS, RECORD_FILE, last_checkpoint, prompt_style, train_dgo
from nextx.train.dgo.retrieval import embedder
from nextx.train.dgo.tts import experience_rounds
from nextx.train.experiences.generator import RuleGenerator
from nextx.train.grpo import RECORD_FILE as TRAIN_RECORD
from nextx.train.grpo import train
from nextx.train.runs import evaluate_path, load_for_eval
from nextx.train.tasks import get_task
from nextx.train.tiny_model import tiny_model_path

EXTRA_ARMS = {  # arm → run settings beside the ablations
    "next": "DGO with trend-fast jumps in each RL phase",
    "guided-only": "DGO distilling the guided trajectories alone (β = 0: as many examples, none under a plain prompt)",
}
ARMS = (*ABLATIONS, *EXTRA_ARMS)


def arm_settings(arm: str, save_every: int) -> dict:
    """The run settings of an arm: an ablation's switch, or DGO with trend-fast jumps from the first
    checkpoint that has a motion behind it, in each RL phase."""
    if arm == "next":
        return {"dgo_ablate": "none", **ARM_JUMPS["trend-fast"], "next_at": 2 * save_every, "next_every": save_every,
                "next_ahead": float(save_every)}  # trend-fast: every checkpoint, one interval ahead
    if arm == "guided-only":
        return {"dgo_ablate": "none", "dgo_beta": 0.0}
    if arm not in ABLATIONS:
        raise ValueError(f"unknown arm {arm!r} (choose from {', '.join(ARMS)})")
    return {"dgo_ablate": arm}


def run_seed(out: Path, settings: dict, seed: int, arms: tuple[str, ...], *, grpo_factor: float = 3.0,
             tts_rounds: int = 3, log=print) -> dict:
    """One seed: GRPO's scored checkpoints and clock, and each arm's zero / TTS accuracies and seconds."""
    task = get_task(settings.get("task") or "addition")
    test = task.test_population() or task.eval_split()  # what evaluate_path(population=True) scores
    base = str(tiny_model_path(task.name, experiences=True, log=log))
    dgo = GRPORunConfig(output_dir=str(out), **{**settings, "algo": "dgo", "seed": seed})
    total = dgo.steps * dgo.dgo_iterations
    grpo_steps = int(round(grpo_factor * total / dgo.save_every)) * dgo.save_every
    grpo = GRPORunConfig(output_dir=str(out / "grpo"), **{**settings, "algo": "grpo", "seed": seed, "model": base,
                                                          "steps": grpo_steps, "epsilon_high": dgo.clip_high()})
    finished = _finished(out / "grpo", TRAIN_RECORD, lambda r: r["config"]["steps"] == grpo_steps
                         and str(grpo_steps) in r.get("save_seconds", {}))
    if finished is None:
        log(f"seed {seed}: GRPO, {grpo_steps} steps")
        clock = train(grpo, log=log).save_seconds
    else:
        clock = {int(k): v for k, v in finished["save_seconds"].items()}
    result = {"grpo": {"steps": grpo_steps, "clock": {str(s): v for s, v in clock.items()}}, "arms": {}}
    for arm in arms:
        config = GRPORunConfig(output_dir=str(out / arm), **{**settings, "algo": "dgo", "seed": seed,
                                                              **arm_settings(arm, dgo.save_every)})
        record = _finished(out / arm, RECORD_FILE, lambda r: len(r["iterations"]) == dgo.dgo_iterations)
        if record is None:
            log(f"seed {seed}: DGO arm {arm}")
            record = train_dgo(config, log=log).record
        seconds = sum(step["seconds"] for step in record["iterations"])
        scores = _scores(out / arm, config, record, task, test, tts_rounds, seed)
        stages = {}
        for step in record["iterations"]:
            for name, value in step.get("stage_seconds", {}).items():
                stages[name] = stages.get(name, 0.0) + value
        result["arms"][arm] = {**scores, "seconds": seconds, "stage_seconds": stages}
    steps_needed = {total} | {_last_before(clock, a["seconds"]) for a in result["arms"].values()}
    result["grpo"]["accuracy"] = {str(s): evaluate_path(out / "grpo" / f"checkpoint-{s}", task, base,
                                                        population=True).accuracy for s in sorted(steps_needed)}
    result["base_accuracy"] = evaluate_path(base, task, population=True).accuracy
    return result


SCORES_FILE = "nextx-ablation-scores.json"


def _scores(run: Path, config: GRPORunConfig, record: dict, task, test, rounds: int, seed: int) -> dict:
    """The final policy's accuracy plain ("zero") and over ``rounds`` of test-time scaling from the run's
    bank, kept in the run folder (``SCORES_FILE``) and reused while the rounds and test set match."""
    file = run / SCORES_FILE
    key = {"rounds": rounds, "test_prompts": len(test)}
    kept = json.loads(file.read_text()) if file.exists() else {}
    if kept.get("key") == key:
        return kept["scores"]
    policy, tokenizer = load_for_eval(last_checkpoint(run / f"iteration-{config.dgo_iterations}"),
                                      record["iterations"][-1]["model"])
    bank = ExperienceBank.load(run / BANK_FILE, embedder(config.dgo_retriever))
    found = experience_rounds(policy, tokenizer, task, bank, test, task.validation_split(config.dgo_validation_size),
                              RuleGenerator(), rounds=rounds, k=config.dgo_experiences, style=prompt_style(config),
                              candidates=config.dgo_candidates, threshold=config.dgo_similarity, seed=seed)
    scores = {"zero": found[0].accuracy, "tts": [r.accuracy for r in found[1:]], "bank": [r.bank for r in found[1:]]}
    atomic_write_text(file, json.dumps({"key": key, "scores": scores}))
    return scores


def _finished(run: Path, record_name: str, done) -> dict | None:
    """The record of a finished run in ``run`` (``done(record)`` true), to reuse when a bench runs again;
    else None, and whatever the folder holds is removed."""
    record = run / record_name
    if record.exists():
        found = json.loads(record.read_text())
        if done(found):
            return found
    shutil.rmtree(run, ignore_errors=True)
    return None


def _last_before(clock: dict[int, float], seconds: float) -> int:
    """GRPO's last checkpoint saved within ``seconds`` of training (its first if none was)."""
    within = [s for s, t in clock.items() if t <= seconds]
    return max(within) if within else min(clock)


def build_report(settings: dict, results: dict[str, dict]) -> dict:
    """Paired differences over seeds (intervals): each arm's zero accuracy against GRPO at equal RL steps
    and at the arm's wall-clock, its last TTS round's against GRPO at equal RL steps, TTS − zero per
    round, each ablation against DGO; costs."""
    seeds = list(results)
    arms = list(next(iter(results.values()))["arms"])
    total = settings["steps"] * settings.get("dgo_iterations", 3)

    def grpo_at(r, step):
        return r["grpo"]["accuracy"][str(step)]

    def grpo_seconds(r):
        return r["grpo"]["clock"][str(total)]

    report = {"settings": settings, "seeds": [int(s) for s in seeds], "arms": {}}
    for arm in arms:
        rows = [results[s]["arms"][arm] for s in seeds]
        clocks = [{int(k): v for k, v in results[s]["grpo"]["clock"].items()} for s in seeds]
        wall_steps = [_last_before(c, row["seconds"]) for c, row in zip(clocks, rows, strict=True)]
        entry = {
            "zero": Interval.of([row["zero"] for row in rows]).to_dict(),
            "tts_last": Interval.of([row["tts"][-1] for row in rows]).to_dict(),
            "tts_minus_zero": [Interval.of([row["tts"][i] - row["zero"] for row in rows]).to_dict()
                               for i in range(len(rows[0]["tts"]))],
            "zero_minus_grpo": Interval.of([row["zero"] - grpo_at(results[s], total)
                                            for s, row in zip(seeds, rows, strict=True)]).to_dict(),
            "tts_minus_grpo": Interval.of([row["tts"][-1] - grpo_at(results[s], total)
                                           for s, row in zip(seeds, rows, strict=True)]).to_dict(),
            "zero_minus_grpo_equal_wall": Interval.of([row["zero"] - grpo_at(results[s], w) for s, row, w
                                                       in zip(seeds, rows, wall_steps, strict=True)]).to_dict(),
            "grpo_steps_at_equal_wall": wall_steps,
            "cost_vs_grpo": Interval.of([row["seconds"] / grpo_seconds(results[s])
                                         for s, row in zip(seeds, rows, strict=True)]).to_dict(),
            "seconds": Interval.of([row["seconds"] for row in rows]).to_dict(),
            "stage_seconds": {k: Interval.of([row["stage_seconds"].get(k, 0.0) for row in rows]).mean
                              for k in rows[0]["stage_seconds"]},
            "zero_gain_per_1000_seconds": Interval.of([1000 * (row["zero"] - _base(results[s])) / row["seconds"]
                                                        for s, row in zip(seeds, rows, strict=True)]).to_dict(),
        }
        if arm != "none" and "none" in arms:  # paired against DGO itself
            entry["zero_minus_dgo"] = Interval.of([results[s]["arms"][arm]["zero"] - results[s]["arms"]["none"]["zero"]
                                                   for s in seeds]).to_dict()
            entry["tts_minus_dgo_tts"] = Interval.of([results[s]["arms"][arm]["tts"][-1]
                                                      - results[s]["arms"]["none"]["tts"][-1] for s in seeds]).to_dict()
        report["arms"][arm] = entry
    report["grpo"] = {
        "equal_steps": Interval.of([grpo_at(results[s], total) for s in seeds]).to_dict(),
        "seconds_at_equal_steps": Interval.of([grpo_seconds(results[s]) for s in seeds]).to_dict(),
        "gain_per_1000_seconds": Interval.of([1000 * (grpo_at(results[s], total) - _base(results[s]))
                                              / grpo_seconds(results[s]) for s in seeds]).to_dict(),
    }
    report["per_seed"] = results
    return json_safe(report)


def _base(result: dict) -> float:
    return result["base_accuracy"]
