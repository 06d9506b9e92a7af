"""The experience bank: a JSON-lines file (one `Experience` per line), retrieval by TF-IDF cosine
similarity over character n-grams (scikit-learn; no model download), and DGO's renewal (§D.1):

* a new experience whose best similarity to the bank is below ``threshold`` (0.8) is a candidate
  addition, accepted only if the bank with it scores higher on validation than the bank without;
* otherwise it is a candidate replacement of its nearest entry, accepted only if the bank with the
  replacement scores higher than the bank as it is.

``score(bank) -> float`` is the caller's validation measure (e.g. avg@k of the policy prompted with
experiences retrieved from that bank); it is called once for the current bank and once per candidate.

Similarities are cosines of `retrieval` vectors (TF-IDF by default, or a sentence encoder's).
Retrieval matches a problem against each entry's source problem and text together: the paper does
not say what its training-time retrieval compares, and a rule's own words rarely share anything with
a new problem's, while the problem it came from does (for arithmetic, the same digits and carries).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from nextx.errors import NextxError
from nextx.io.jsonfile import read_text_checked
from nextx.io.write import atomic_write_text
from nextx.train.dgo.retrieval import TfidfEmbedder
from nextx.train.experiences.line import Experience, is_experience

SIMILARITY_THRESHOLD = 0.8
BANK_MAX_BYTES = 2**30  # a bank is JSON lines of short rules: far more than any run writes
BANK_FILE = "experience_bank.jsonl"  # the bank's name in a DGO run directory
BANK_LINE = 'Each line: {"text": "WHEN … IF … THEN …", "source": …, "round": …, "score": …}'


@dataclass
class Decision:
    """What renewal did with one candidate: added | replaced | rejected, and why."""

    text: str
    action: str
    similarity: float
    nearest: int | None
    score: float | None
    reason: str


class ExperienceBank:
    """Experiences and the vectors their similarities use (``embed``: texts → rows; TF-IDF by default)."""

    def __init__(self, entries: Iterable[Experience] = (), embed=None):
        self.entries = list(entries)
        self.embed = embed or TfidfEmbedder()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.entries]

    # -- file ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, embed=None) -> ExperienceBank:
        """Read a bank file (JSON lines); NextxError naming the line for anything malformed."""
        entries = []
        for number, line in enumerate(read_text_checked(Path(path), limit=BANK_MAX_BYTES).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                round_, score = row.get("round", 0), row.get("score")
                if isinstance(round_, bool) or not isinstance(round_, int) or not (
                        score is None or (isinstance(score, int | float) and not isinstance(score, bool)
                                          and math.isfinite(score))):
                    raise ValueError("round must be a whole number, score a finite number or null")
                entries.append(Experience(str(row["text"]), str(row.get("source", "")), round_,
                                          None if score is None else float(score)))
            except (ValueError, KeyError, TypeError, RecursionError, AttributeError):
                raise NextxError(f"line {number} of the experience bank is not an experience object", path=path,
                                 hint=BANK_LINE) from None
            if not is_experience(entries[-1].text):
                raise NextxError(f"line {number} of the experience bank is not a WHEN … IF … THEN … line", path=path,
                                 hint=BANK_LINE)
        return cls(entries, embed)

    def save(self, path: str | Path) -> Path:
        """Write the bank atomically (temp file + rename)."""
        atomic_write_text(Path(path), "".join(json.dumps(e.to_dict()) + "\n" for e in self.entries))
        return Path(path)

    # -- similarity ---------------------------------------------------------------------------
    def similarities(self, queries: list[str], documents: list[str] | None = None):
        """Cosine similarity of each query to each document (queries × documents; default: the entries'
        texts), from vectors of both together (TF-IDF is fitted on them)."""
        from sklearn.metrics.pairwise import cosine_similarity

        documents = self.texts if documents is None else documents
        vectors = self.embed(documents + queries)
        return cosine_similarity(vectors[len(documents):], vectors[: len(documents)])

    def nearest(self, text: str) -> tuple[int | None, float]:
        """(index, similarity) of the entry most similar to ``text`` ((None, 0.0) for an empty bank)."""
        if not self.entries:
            return None, 0.0
        row = self.similarities([text])[0]
        index = int(row.argmax())
        return index, float(row[index])

    def retrieve(self, problems: list[str], k: int = 4) -> list[list[str]]:
        """For each problem, the ``k`` experiences whose source problem and text are most similar to it
        (best first; ties keep bank order)."""
        if not self.entries or k == 0:
            return [[] for _ in problems]
        rows = self.similarities(problems, [f"{e.source} {e.text}" for e in self.entries])
        return [[self.entries[i].text for i in (-row).argsort(kind="stable")[:k]] for row in rows]

    # -- renewal ------------------------------------------------------------------------------
    def renew(self, candidates: Iterable[Experience], score: Callable[[ExperienceBank], float], *,
              threshold: float = SIMILARITY_THRESHOLD, current: float | None = None) -> list[Decision]:
        """Apply DGO's Select to each candidate in turn (see the module docstring); the bank changes in place.
        ``current``: the bank's score as it is, when the caller has measured it already."""
        candidates = list(candidates)
        if not candidates:
            return []
        decisions = []
        current = score(self) if current is None else current
        for candidate in candidates:
            index, similarity = self.nearest(candidate.text)
            new = index is None or similarity < threshold
            entries = list(self.entries)
            if new:
                entries.append(candidate)
                where = f"new (similarity {similarity:.2f} < {threshold})"
            else:
                entries[index] = candidate
                where = f"near entry {index} (similarity {similarity:.2f})"
            trial = score(ExperienceBank(entries, self.embed))
            if trial > current:
                if new:
                    self.entries.append(replace(candidate, score=trial))
                else:
                    self.entries[index] = replace(candidate, score=trial)
                action, why = ("added" if new else "replaced"), f"{where}; validation {current:.4f} → {trial:.4f}"
                current = trial
            else:
                action, why = "rejected", f"{where}; validation does not improve ({trial:.4f} ≤ {current:.4f})"
            decisions.append(Decision(candidate.text, action, similarity, index, trial, why))
        return decisions
