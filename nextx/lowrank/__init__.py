"""Exact top singular triplets of low-rank updates, computed from their factors.

For ΔW = L·R (L: m×k, R: k×n, k ≪ min(m, n)) with Gram matrices G_L = LᵀL and G_R = R·Rᵀ,
write G_L = QΛQᵀ and S = Λ^½Qᵀ (so SᵀS = G_L). The nonzero σᵢ² of ΔW are the eigenvalues of the
k×k matrix K = S·G_R·Sᵀ, and with K z = σ₁² z:

    v₁ = Rᵀ·Sᵀz / σ₁        u₁ = L·(R·v₁) / σ₁

Nothing is inverted and no m×n matrix is formed: the cost is O((m+n)k²) for the Grams plus O(k³).
A combination Σᵢ cᵢ·Lᵢ·Rᵢ of several checkpoints' factors (a local or target delta) is again of
this form with L = [c₁L₁, c₂L₂, …] and R = [R₁; R₂; …]; `FactorStack` caches the Gram blocks
Lᵢᵀ·Lⱼ and Rᵢ·Rⱼᵀ so each block is computed once per module. Everything runs in float64.

`DenseStack` offers the same interface for full-weight checkpoints, with a randomized top-k
solver (torch.svd_lowrank) in float32 — never a full SVD.

Modules, one concern each: `spectrum` (the core solver, sign alignment), `factor_stack` (LoRA
deltas), `dense_stack` (full-weight deltas), `update` (factored combinations and their algebra).
"""

from nextx.lowrank.dense_stack import DenseStack
from nextx.lowrank.factor_stack import FactorStack, top_singular_triplet
from nextx.lowrank.spectrum import DTYPE, Spectrum, align_sign, core_top
from nextx.lowrank.update import (
    FactoredUpdate,
    checkpoint,
    compact,
    dense_of,
    factors_of,
    truncate,
    update_inner,
)

__all__ = [
    "DTYPE", "DenseStack", "FactorStack", "FactoredUpdate", "Spectrum", "align_sign", "checkpoint", "compact", "core_top",
    "dense_of", "factors_of", "top_singular_triplet", "truncate", "update_inner",
]
