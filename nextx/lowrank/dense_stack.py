"""`DenseStack`: full-weight deltas with FactorStack's interface and a randomized top-k solver."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nextx.lowrank.spectrum import DTYPE, Spectrum


class DenseStack:
    """Full-weight deltas ΔWᵢ = Wᵢ − W₀ of one module (float32), same interface as FactorStack."""

    def __init__(self, deltas: Sequence[torch.Tensor], *, oversample: int = 8, iterations: int = 8, seed: int = 0):
        self.deltas = [d.to(torch.float32) for d in deltas]
        self.shape = tuple(self.deltas[0].shape)
        self.oversample = oversample
        self.iterations = iterations
        self.seed = seed

    def __len__(self) -> int:
        return len(self.deltas)

    def inner(self, i: int, j: int) -> float:
        """⟨ΔWᵢ, ΔWⱼ⟩ in float64 accumulation."""
        return float((self.deltas[i].to(DTYPE) * self.deltas[j].to(DTYPE)).sum())

    def spectra(self, coef_list: Sequence[Mapping[int, float]], *, all_values: bool | Sequence[bool] = True
                ) -> list[Spectrum]:
        """`spectrum` of each combination (``all_values`` has no effect: the randomized solver never
        gives the whole spectrum, so dense stacks report no energy)."""
        return [self.spectrum(coefs) for coefs in coef_list]

    def spectrum(self, coefs: Mapping[int, float]) -> Spectrum:
        """Top triplet of Σᵢ cᵢ·ΔWᵢ by randomized subspace iteration (svd_lowrank), no full SVD."""
        m, n = self.shape
        matrix = torch.zeros(m, n, dtype=torch.float32)
        for i, c in coefs.items():
            if c != 0:
                matrix.add_(self.deltas[i], alpha=float(c))
        if not torch.any(matrix):
            return Spectrum(0.0, torch.zeros(m, dtype=DTYPE), torch.zeros(n, dtype=DTYPE))
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        try:
            q = min(1 + self.oversample, m, n)
            u, s, v = torch.svd_lowrank(matrix, q=q, niter=self.iterations)
        finally:
            torch.random.set_rng_state(generator_state)
        return Spectrum(float(s[0]), u[:, 0].to(DTYPE), v[:, 0].to(DTYPE))

    def bilinear(self, i: int, u: torch.Tensor, v: torch.Tensor) -> float:
        """uᵀ·ΔWᵢ·v."""
        return float(u.float() @ self.deltas[i] @ v.float())

    def delta(self, i: int) -> torch.Tensor:
        return self.deltas[i]
