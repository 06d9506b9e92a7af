"""`FactorStack`: a module's LoRA deltas at every checkpoint as cached factor Gram blocks (float64)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from nextx.lowrank.spectrum import DTYPE, Spectrum, core_top


def top_singular_triplet(B: torch.Tensor, A: torch.Tensor, scale: float = 1.0) -> tuple[float, torch.Tensor, torch.Tensor]:
    """σ₁, u₁, v₁ of scale·B·A (B: m×r, A: r×n) from the r×r core, in float64."""
    spec = FactorStack([B.to(DTYPE) * scale], [A]).spectrum({0: 1.0})
    return spec.sigma, spec.u, spec.v


class FactorStack:
    """The global deltas ΔWᵢ = Lᵢ·Rᵢ of one module at every checkpoint i, in float64.

    ``spectrum({i: cᵢ, ...})`` returns the triplet of Σᵢ cᵢ·ΔWᵢ; an empty mapping is the zero delta.
    `FactorStack.lazy` reads checkpoint i only when a computation first needs it.
    """

    def __init__(self, lefts: Sequence[torch.Tensor], rights: Sequence[torch.Tensor]):
        self._factors: list[tuple[torch.Tensor, torch.Tensor] | None] = [
            (left.to(DTYPE), right.to(DTYPE)) for left, right in zip(lefts, rights, strict=True)]
        self._load: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
        self._gram_left: dict[tuple[int, int], torch.Tensor] = {}
        self._gram_right: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def lazy(cls, count: int, load: Callable[[int], tuple[torch.Tensor, torch.Tensor]]) -> FactorStack:
        """A stack of ``count`` deltas whose factors (Lᵢ, Rᵢ) = load(i) are read on first use."""
        stack = cls([], [])
        stack._factors = [None] * count
        stack._load = load
        return stack

    def _get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        factors = self._factors[i]
        if factors is None:
            left, right = self._load(i)
            factors = self._factors[i] = (left.to(DTYPE), right.to(DTYPE))
        return factors

    def left(self, i: int) -> torch.Tensor:
        """Lᵢ (m×rᵢ)."""
        return self._get(i)[0]

    def right(self, i: int) -> torch.Tensor:
        """Rᵢ (rᵢ×n)."""
        return self._get(i)[1]

    @property
    def shape(self) -> tuple[int, int]:
        loaded = next((i for i, f in enumerate(self._factors) if f is not None), len(self._factors) - 1)
        return self.left(loaded).shape[0], self.right(loaded).shape[1]

    def __len__(self) -> int:
        return len(self._factors)

    def gram_left(self, i: int, j: int) -> torch.Tensor:
        """Lᵢᵀ·Lⱼ (cached; the (j, i) block is its transpose)."""
        return self._block(self._gram_left, i, j, lambda a, b: self.left(a).T @ self.left(b))

    def gram_right(self, i: int, j: int) -> torch.Tensor:
        """Rᵢ·Rⱼᵀ (cached)."""
        return self._block(self._gram_right, i, j, lambda a, b: self.right(a) @ self.right(b).T)

    @staticmethod
    def _block(cache, i, j, compute):
        if (i, j) in cache:
            return cache[(i, j)]
        if (j, i) in cache:
            return cache[(j, i)].T
        block = compute(i, j)
        cache[(i, j)] = block
        return block

    def inner(self, i: int, j: int) -> float:
        """Frobenius inner product ⟨ΔWᵢ, ΔWⱼ⟩ = Σ (Lᵢᵀ·Lⱼ) ⊙ (Rᵢ·Rⱼᵀ)."""
        return float((self.gram_left(i, j) * self.gram_right(i, j)).sum())

    def spectra(self, coef_list: Sequence[Mapping[int, float]], *, all_values: bool | Sequence[bool] = True
                ) -> list[Spectrum]:
        """`spectrum` of many combinations, reading each Lᵢ (m×rᵢ) once for all of them:
        u = Σᵢ cᵢ·Lᵢ·(Rᵢ·v) is one matrix product per checkpoint instead of one per combination.
        ``all_values`` (per combination): also return every singular value (needed for the energy)."""
        m, n = self.shape
        if isinstance(all_values, bool):
            all_values = [all_values] * len(coef_list)
        cores, columns = [], {}
        for k, coefs in enumerate(coef_list):
            idx = [i for i, c in coefs.items() if c != 0]
            if not idx:
                cores.append(None)
                continue
            c = [float(coefs[i]) for i in idx]
            gram_left = torch.cat([torch.cat([c[a] * c[b] * self.gram_left(i, j) for b, j in enumerate(idx)], 1)
                                   for a, i in enumerate(idx)])
            gram_right = torch.cat([torch.cat([self.gram_right(i, j) for j in idx], 1) for i in idx])
            singular_values, y = core_top(gram_left, gram_right, all_values=all_values[k])
            if float(singular_values[0]) == 0.0:
                cores.append((singular_values, torch.zeros(n, dtype=DTYPE)))
                continue
            sizes = [self.left(i).shape[1] for i in idx]
            v = sum(self.right(i).T @ part for i, part in zip(idx, y.split(sizes), strict=True))
            v = v / v.norm()
            cores.append((singular_values, v))
            for ci, i in zip(c, idx, strict=True):
                columns.setdefault(i, []).append((k, ci * (self.right(i) @ v)))
        images = torch.zeros(m, len(coef_list), dtype=DTYPE)
        for i, cols in columns.items():
            images[:, [k for k, _ in cols]] += self.left(i) @ torch.stack([x for _, x in cols], 1)
        out = []
        for k, core in enumerate(cores):
            if core is None:
                out.append(Spectrum(0.0, torch.zeros(m, dtype=DTYPE), torch.zeros(n, dtype=DTYPE), torch.zeros(1, dtype=DTYPE)))
                continue
            singular_values, v = core
            sigma = float(images[:, k].norm())
            u = images[:, k] / sigma if sigma > 0 else images[:, k].clone()
            out.append(Spectrum(sigma, u, v, singular_values if all_values[k] else None))
        return out

    def spectrum(self, coefs: Mapping[int, float]) -> Spectrum:
        """Triplet of Σᵢ cᵢ·ΔWᵢ from the cached Gram blocks (rank ≤ Σ rᵢ)."""
        return self.spectra([coefs])[0]

    def bilinear(self, i: int, u: torch.Tensor, v: torch.Tensor) -> float:
        """uᵀ·ΔWᵢ·v = (uᵀLᵢ)(Rᵢv)."""
        return float((u.to(DTYPE) @ self.left(i)) @ (self.right(i) @ v.to(DTYPE)))

    def delta(self, i: int) -> torch.Tensor:
        """Materialise ΔWᵢ (m×n). For tests and small matrices only."""
        return self.left(i) @ self.right(i)
