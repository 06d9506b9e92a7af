"""The experience bank: a JSON-lines file (one `Experience` per line), retrieval by TF-IDF cosine
similarity over character n-grams (scikit-learn; no model download), and DGO's renewal (§D.1):

* a new experience whose best similarity to the bank is below ``threshold`` (0.8) is a candidate
  addition, accepted only if the bank with it scores higher on validation than the bank without;
* otherwise it is a candidate replacement of its nearest entry, accepted only if the bank with the
  replacement scores higher than the bank as it is.

``score(texts) -> float`` is the caller's validation measure (e.g. avg@k of the policy prompted
with those experiences); it is called once for the current bank and once per candidate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from nextx.errors import NextxError
from nextx.io.jsonfile import read_text_checked
from nextx.io.write import atomic_write_text
from nextx.train.dgo.experience import Experience, is_experience

SIMILARITY_THRESHOLD = 0.8
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
    def __init__(self, entries: Iterable[Experience] = ()):
        self.entries = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.entries]

    # -- file ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> ExperienceBank:
        """Read a bank file (JSON lines); NextxError naming the line for anything malformed."""
        entries = []
        for number, line in enumerate(read_text_checked(Path(path)).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                entries.append(Experience(str(row["text"]), str(row.get("source", "")), int(row.get("round", 0)),
                                          None if row.get("score") is None else float(row["score"])))
            except (ValueError, KeyError, TypeError):
                raise NextxError(f"line {number} of the experience bank is not an experience object", path=path,
                                 hint=BANK_LINE) from None
            if not is_experience(entries[-1].text):
                raise NextxError(f"line {number} of the experience bank is not a WHEN … IF … THEN … line", path=path,
                                 hint=BANK_LINE)
        return cls(entries)

    def save(self, path: str | Path) -> Path:
        """Write the bank atomically (temp file + rename)."""
        atomic_write_text(Path(path), "".join(json.dumps(e.to_dict()) + "\n" for e in self.entries))
        return Path(path)

    # -- similarity ---------------------------------------------------------------------------
    def similarities(self, queries: list[str]):
        """Cosine similarity of each query to each entry (queries × entries), TF-IDF of char 3–5-grams
        fitted on the bank and the queries together."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.metrics.pairwise import cosine_similarity

        vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(self.texts + queries)
        return cosine_similarity(vectors[len(self.entries):], vectors[: len(self.entries)])

    def nearest(self, text: str) -> tuple[int | None, float]:
        """(index, similarity) of the entry most similar to ``text`` ((None, 0.0) for an empty bank)."""
        if not self.entries:
            return None, 0.0
        row = self.similarities([text])[0]
        index = int(row.argmax())
        return index, float(row[index])

    def retrieve(self, problem: str, k: int = 4) -> list[str]:
        """The ``k`` experiences most similar to ``problem`` (best first)."""
        if not self.entries:
            return []
        row = self.similarities([problem])[0]
        return [self.entries[i].text for i in row.argsort()[::-1][:k]]

    # -- renewal ------------------------------------------------------------------------------
    def renew(self, candidates: Iterable[Experience], score: Callable[[list[str]], float], *,
              threshold: float = SIMILARITY_THRESHOLD) -> list[Decision]:
        """Apply DGO's Select to each candidate in turn (see the module docstring); the bank changes in place."""
        decisions = []
        current = score(self.texts)
        for candidate in candidates:
            index, similarity = self.nearest(candidate.text)
            new = index is None or similarity < threshold
            texts = self.texts
            if new:
                texts.append(candidate.text)
                where = f"new (similarity {similarity:.2f} < {threshold})"
            else:
                texts[index] = candidate.text
                where = f"near entry {index} (similarity {similarity:.2f})"
            trial = score(texts)
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
