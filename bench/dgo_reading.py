"""Benchmark: how a model reads experiences — why they lowered DGO's accuracy at test time.

Exact accuracy on the task's test population of each model given: plain prompts; the rule the
generator writes for the problem's own right answer (an oracle: it needs the answer); the same
rules shuffled across problems (another problem's rule); and the experience retrieved (k = 1) from
the initial bank DGO builds for that model (seed 0's). A model that reads a rule as a fact about
this problem gains from the oracle and loses from the others; one that reads it as advice is unmoved.

    python bench/dgo_reading.py                                  # the packaged experience-reading model
    python bench/dgo_reading.py MODEL_DIR [CHECKPOINT …] --base MODEL_DIR
"""

from __future__ import annotations

import argparse
import random

from nextx.train.dgo.loop import initial_bank
from nextx.train.dgo.retrieval import embedder
from nextx.train.evaluate import evaluate
from nextx.train.experiences.generator import RuleGenerator
from nextx.train.experiences.prompts import experience_prompt
from nextx.train.runs import load_for_eval
from nextx.train.tasks import Example, get_task
from nextx.train.tiny_model import tiny_model_path


def reading(path: str, base: str | None, task, bank) -> dict[str, float]:
    """Accuracy of one model under each prompt condition (see the module docstring)."""
    model, tokenizer = load_for_eval(path, base)
    test = task.test_population() or task.eval_split()
    generate = RuleGenerator()
    own = [generate(e.prompt, e.answer, e.answer) for e in test]
    other = own[:]
    random.Random(0).shuffle(other)
    retrieved = bank.retrieve([e.prompt for e in test], 1)

    def accuracy(rules):
        return evaluate(model, tokenizer, task, [Example(experience_prompt(e.prompt, [r] if isinstance(r, str) else r),
                                                         e.answer) for e, r in zip(test, rules, strict=True)]).accuracy

    return {"plain": accuracy([[]] * len(test)), "own rule (oracle)": accuracy(own),
            "another problem's rule": accuracy(other), "retrieved (k = 1)": accuracy(retrieved)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model dirs or checkpoints (default: the packaged DGO tiny model)")
    parser.add_argument("--base", default=None, help="base of adapter checkpoints; also builds the initial bank")
    args = parser.parse_args()
    task = get_task("addition")
    base = args.base or str(tiny_model_path("addition", experiences=True))
    models = args.models or [base]
    bank = initial_bank(base, task, task.train_examples(64, seed=1), RuleGenerator(), 0.8, embedder("tfidf"))
    print(f"initial bank of {len(bank)} (seed 0's, from {base}); exact accuracy on the test population, %\n")
    rows = {m: reading(m, args.base, task, bank) for m in models}
    columns = list(next(iter(rows.values())))
    print("| model | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for model, row in rows.items():
        print(f"| {model} | " + " | ".join(f"{100 * row[c]:.1f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
