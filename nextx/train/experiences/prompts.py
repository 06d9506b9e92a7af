"""The prompts of DGO, in nextx's own words (the paper's Tables 7, 9 and 10 give their structure).

Two styles: ``instruct`` for a user's instruction-following model, ``compact`` for the embedded tiny
character-level models (experience lines, a newline, the problem — short enough for their context).
"""

from __future__ import annotations

import string

EXPERIENCE_ALPHABET = string.ascii_letters + " .,\n"  # what experience lines add to a task's characters
STYLES = ("compact", "instruct")

GUIDED = (
    "Solve the problem step by step and give the final answer within \\boxed{{}}. Some problem-solving "
    "experiences from earlier attempts follow; use them where they help.\n\n[Experiences]\n{experiences}\n"
    "[Problem]\n{problem}"
)
EXTRACT = (
    "You distil reusable knowledge from worked solutions. Read the problem and the candidate solution, "
    "decide whether the solution is likely right or wrong, and write exactly one general rule: for a "
    "right solution, how to reach it more directly; for a wrong one, the warning sign and what to do "
    "instead. Keep formulas and thresholds, never the final answer. Answer with a single line of the form "
    "WHEN <domain or phase>. IF <condition or likely error>. THEN <action>.\n\n[Problem]\n{problem}\n"
    "[Solution]\n{solution}\n[Rule]\n"
)
REWRITE = (
    "Write a model solution to the problem that stands entirely on its own: never mention the "
    "experiences or the reference, justify every shortcut from first principles, silently fix any "
    "error in the reference, keep its strategy, and end with the same final answer.\n\n[Experiences]\n"
    "{experiences}\n[Problem]\n{problem}\n[Reference solution]\n{solution}\n[Your solution]\n"
)


def experience_prompt(problem: str, experiences: list[str], style: str = "compact") -> str:
    """The problem preceded by its retrieved experiences (the problem alone when there are none)."""
    if not experiences:
        return problem
    if style == "compact":
        return "\n".join([*experiences, problem])
    return GUIDED.format(experiences="\n".join(experiences), problem=problem)
