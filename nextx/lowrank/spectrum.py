"""The top singular triplet of L·R from its k×k Gram core (see `nextx.lowrank`), and sign alignment."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

DTYPE = torch.float64


@dataclass(frozen=True)
class Spectrum:
    """Top singular triplet (sigma, u, v) of one delta, plus all its singular values when known."""

    sigma: float
    u: torch.Tensor
    v: torch.Tensor
    singular_values: torch.Tensor | None = None

    @property
    def energy(self) -> float | None:
        """Rank-1 energy σ₁ / Σσᵢ (None when the spectrum is unknown, 0/0 → 0)."""
        if self.singular_values is None:
            return None
        total = float(self.singular_values.sum())
        return self.sigma / total if total > 0 else 0.0


def core_top(gram_left: torch.Tensor, gram_right: torch.Tensor, *, all_values: bool = True
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """σᵢ (descending; all of them, or only σ₁ with ``all_values=False``) of ΔW = L·R from G_L = LᵀL
    and G_R = RRᵀ, and y = Sᵀz so that v₁ ∝ Rᵀy.

    S is the Cholesky factor of G_L (G_L = SᵀS); a singular G_L falls back to S = Λ^½Qᵀ from its
    eigendecomposition. σ₁ alone uses LAPACK's subset eigensolver (syevr), a few times cheaper."""
    lower, info = torch.linalg.cholesky_ex(gram_left)
    if int(info) == 0:
        root_left = lower.T
    else:
        evals_l, evecs_l = torch.linalg.eigh(gram_left)
        root_left = evals_l.clamp_min(0).sqrt().unsqueeze(1) * evecs_l.T
    core = root_left @ gram_right @ root_left.T
    core = (core + core.T) / 2
    if all_values:
        evals, evecs = torch.linalg.eigh(core)
        return evals.clamp_min(0).flip(0).sqrt(), root_left.T @ evecs[:, -1]
    top = core.shape[0] - 1
    eigh, blas = _subset_eigensolver()
    with blas.limit(limits=1, user_api="blas"):  # on a k×k core its threads only contend with torch's
        value, vector = eigh(core.numpy(), subset_by_index=[top, top], driver="evr", check_finite=False)
    return torch.from_numpy(value).clamp_min(0).sqrt(), root_left.T @ torch.from_numpy(vector[:, 0])


@functools.cache
def _subset_eigensolver():
    """scipy's eigh (LAPACK syevr with subset_by_index) and a controller of scipy's OpenBLAS threads,
    imported on first use (scipy adds ~0.5 s to start-up)."""
    import scipy.linalg
    from threadpoolctl import ThreadpoolController

    return scipy.linalg.eigh, ThreadpoolController()


def align_sign(spec: Spectrum, reference: torch.Tensor | None) -> Spectrum:
    """Flip (u, v) jointly so that u·reference ≥ 0; with no reference, the largest |uᵢ| is positive.

    σ·u·vᵀ is unchanged by the joint flip.
    """
    if spec.sigma == 0.0:
        return spec
    if reference is not None and torch.any(reference):
        flip = float(spec.u @ reference.to(spec.u.dtype)) < 0
    else:
        flip = float(spec.u[spec.u.abs().argmax()]) < 0
    if not flip:
        return spec
    return Spectrum(spec.sigma, -spec.u, -spec.v, spec.singular_values)
