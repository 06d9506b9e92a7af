"""Text vectors for the experience bank's cosine similarities: TF-IDF over character 3–5-grams
(scikit-learn, fitted on the texts compared; the default, nothing to download), or a sentence
embedding from a transformers encoder the user names (mean of the last hidden states over real
tokens, L2-normalised; safetensors only, no remote code)."""

from __future__ import annotations

import numpy as np


class TfidfEmbedder:
    name = "tfidf"

    def __call__(self, texts: list[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(texts)


class ModelEmbedder:
    """Sentence vectors from an encoder (a local path or Hub id), e.g. sentence-transformers/all-MiniLM-L6-v2."""

    def __init__(self, model: str, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        from nextx.io.hub import resolve_model

        path = resolve_model(model)
        self.name = model
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
        self.batch_size = batch_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                                       truncation=True)
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))


def embedder(name: str = "tfidf"):
    """``tfidf`` or an encoder's path / Hub id."""
    return TfidfEmbedder() if name == "tfidf" else ModelEmbedder(name)
