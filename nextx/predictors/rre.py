"""`rre`: reduced rank extrapolation (RRE) of each module's checkpoint sequence, from the factored Gram.

With the last k+1 checkpoints x₀ … x_k of a module (global deltas Wᵢ − W₀) and their differences
uⱼ = x_{j+1} − xⱼ (j < k), RRE picks the weights γ that best cancel the motion,

    γ = argmin ‖Σⱼ γⱼ·uⱼ‖²  s.t.  Σⱼ γⱼ = 1   →   γ ∝ G⁻¹·1,   G_ab = ⟨u_a, u_b⟩,

and estimates the sequence's limit as s = Σⱼ γⱼ·x_{j+1}. G is k×k, built from the LoRA factors'
Gram blocks (nothing m×n is formed); its eigen-directions below 1e-6 × the largest are round-off
(see `min_residual_weights`), never extrapolated. When the checkpoints converge with at most k
modes (xⱼ = s − Σ_m ρ_mʲ·E_m), s is their limit exactly.

    Ŵ(α) = W_T + α·(s − x_k)

α = 1 is the estimated limit, which has no step number: by convention it stands for the k
intervals of the window, so ``--ahead N`` moves N / (steps of the window) of the way there. A run
that drifts at constant velocity has no limit: RRE then returns about the window's mean (a step
back), which is what it measures as a denoiser, not a forecaster.
"""

from __future__ import annotations

import torch

from nextx.lowrank import FactoredUpdate, update_inner
from nextx.predictors.base import ModuleContext, Param, Prediction, Predictor, positive_int

DEFAULT_WINDOW = 4  # differences (k): 5 checkpoints
NOISE = 1e-6  # eigenvalues of G below this × the largest are round-off (float32 checkpoints: ~1e-12)


class RRE(Predictor):
    name = "rre"
    candidate = False  # a denoiser, not a forecaster (README: bench)
    params = (Param("window", DEFAULT_WINDOW, "rre: checkpoint differences (k) extrapolated.", option="--rre-window", metavar="INTEGER", parse=positive_int),)

    def _window(self) -> int:
        return max(int(self.hparams.get("window") or DEFAULT_WINDOW), 2)

    def horizon_steps(self, steps: list[int]) -> float:
        k = min(self._window(), len(steps) - 1)
        return float(steps[-1] - steps[-1 - k]) if k > 0 else float(steps[-1])

    def predict(self, ctx: ModuleContext) -> Prediction:
        points = list(range(max(0, ctx.last - self._window()), ctx.last + 1))
        if len(points) < 3:  # fewer than two differences: no extrapolation
            return Prediction(FactoredUpdate())
        diffs = [FactoredUpdate({b: 1.0, a: -1.0}) for a, b in zip(points, points[1:], strict=False)]
        gram = torch.tensor([[update_inner(ctx.stack, x, y) for y in diffs] for x in diffs], dtype=torch.float64)
        gamma = min_residual_weights(gram)
        if gamma is None:  # no motion in the window
            return Prediction(FactoredUpdate())
        limit = FactoredUpdate({b: float(g) for b, g in zip(points[1:], gamma, strict=True)})
        return Prediction(limit - FactoredUpdate({ctx.last: 1.0}))


def min_residual_weights(gram: torch.Tensor) -> torch.Tensor | None:
    """γ minimising γᵀGγ subject to Σγ = 1 (None if G = 0). Eigen-directions of G below ``NOISE`` × the
    largest are treated as exact cancellation: if the constraint can be met there, γ is the
    minimum-norm such weighting (no bias); otherwise γ ∝ G⁺·1 on the remaining directions."""
    evals, evecs = torch.linalg.eigh(gram)
    if float(evals[-1]) <= 0:
        return None
    ones = torch.ones(len(gram), dtype=torch.float64)
    keep = evals > NOISE * evals[-1]
    null = evecs[:, ~keep]
    gamma = null @ (null.T @ ones)
    if float(gamma.sum()) <= 1e-8 * len(gram):  # the constraint needs the signal directions
        kept = evecs[:, keep]
        gamma = kept @ ((kept.T @ ones) / evals[keep])
    return gamma / gamma.sum()
