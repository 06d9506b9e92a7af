"""`FactorStack`: a module's LoRA deltas at every checkpoint as cached factor Gram blocks (float64)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from nextx.lowrank.spectrum import DTYPE, Spectrum, core_top


def top_singular_triplet(B: torch.Tensor, A: torch.Tensor, scale: float = 1.0) -> tuple[float, torch.Tensor, torch.Tensor]:
    """σ₁, u₁, v₁ of scale·B·A (B: m×r, A: r×n) from the r×r core, in float64."""
    spec = FactorStack([B.to(DTYPE) * scale], [A]).spectrum({0: 1.0})
    return spec.sigma, spec.u, spec.v


def _stored(left: torch.Tensor, right: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(Lᵀ, R) in float64 on ``device``, both row-major (no copy when they already are)."""
    return (left.to(device=device, dtype=DTYPE).T.contiguous(),
            right.to(device=device, dtype=DTYPE).contiguous())


class FactorStack:
    """The global deltas ΔWᵢ = Lᵢ·Rᵢ of one module at every checkpoint i, in float64.

    Lᵢ is kept transposed (rᵢ×m, contiguous), so both Gram blocks LᵢᵀLⱼ and RᵢRⱼᵀ are products of
    row-major r×k matrices with the transpose of another, the form BLAS runs fastest (~1.5× the
    transposed-first form for tall factors).

    ``device``: where the factors live and the m- and n-long products run (Gram blocks, u and v);
    the small cores (k×k, k = Σ rᵢ) are solved on the CPU, and spectra are returned there.

    ``spectrum({i: cᵢ, ...})`` returns the triplet of Σᵢ cᵢ·ΔWᵢ; an empty mapping is the zero delta.
    `FactorStack.lazy` reads checkpoint i only when a computation first needs it.
    """

    def __init__(self, lefts: Sequence[torch.Tensor], rights: Sequence[torch.Tensor], *,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._factors: list[tuple[torch.Tensor, torch.Tensor] | None] = [
            _stored(left, right, self.device) for left, right in zip(lefts, rights, strict=True)]
        self._load: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
        self._gram_left: dict[tuple[int, int], torch.Tensor] = {}
        self._gram_right: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def lazy(cls, count: int, load: Callable[[int], tuple[torch.Tensor, torch.Tensor]], *,
             device: str | torch.device = "cpu") -> FactorStack:
        """A stack of ``count`` deltas whose factors (Lᵢ, Rᵢ) = load(i) are read on first use."""
        stack = cls([], [], device=device)
        stack._factors = [None] * count
        stack._load = load
        return stack

    def _get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        factors = self._factors[i]
        if factors is None:
            factors = self._factors[i] = _stored(*self._load(i), self.device)
        return factors

    def left(self, i: int) -> torch.Tensor:
        """Lᵢ (m×rᵢ, a transposed view)."""
        return self._get(i)[0].T

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
        return self._block(self._gram_left, i, j, lambda a, b: self._get(a)[0] @ self._get(b)[0].T)

    def gram_right(self, i: int, j: int) -> torch.Tensor:
        """Rᵢ·Rⱼᵀ (cached)."""
        return self._block(self._gram_right, i, j, lambda a, b: self.right(a) @ self.right(b).T)

    @staticmethod
    def _block(cache, i, j, compute):
        if (i, j) in cache:
            return cache[(i, j)]
        if (j, i) in cache:
            return cache[(j, i)].T
        block = compute(i, j).cpu()
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
                cores.append((singular_values, torch.zeros(n, dtype=DTYPE, device=self.device)))
                continue
            sizes = [self.left(i).shape[1] for i in idx]
            y = y.to(self.device)
            v = sum(part @ self.right(i) for i, part in zip(idx, y.split(sizes), strict=True))
            v = v / v.norm()
            cores.append((singular_values, v))
            for ci, i in zip(c, idx, strict=True):
                columns.setdefault(i, []).append((k, ci * (self.right(i) @ v)))
        images = torch.zeros(len(coef_list), m, dtype=DTYPE, device=self.device)  # row k: σ_k·u_k
        for i, cols in columns.items():
            rows = torch.tensor([k for k, _ in cols], device=self.device)
            images.index_add_(0, rows, torch.stack([x for _, x in cols]) @ self._get(i)[0])
        images = images.cpu()
        out = []
        for k, core in enumerate(cores):
            if core is None:
                out.append(Spectrum(0.0, torch.zeros(m, dtype=DTYPE), torch.zeros(n, dtype=DTYPE), torch.zeros(1, dtype=DTYPE)))
                continue
            singular_values, v = core
            sigma = float(images[k].norm())
            u = images[k] / sigma if sigma > 0 else images[k].clone()
            out.append(Spectrum(sigma, u, v.cpu(), singular_values if all_values[k] else None))
        return out

    def spectrum(self, coefs: Mapping[int, float]) -> Spectrum:
        """Triplet of Σᵢ cᵢ·ΔWᵢ from the cached Gram blocks (rank ≤ Σ rᵢ)."""
        return self.spectra([coefs])[0]

    def bilinear(self, i: int, u: torch.Tensor, v: torch.Tensor) -> float:
        """uᵀ·ΔWᵢ·v = (uᵀLᵢ)(Rᵢv)."""
        u, v = u.to(self.device, DTYPE), v.to(self.device, DTYPE)
        return float((u @ self.left(i)) @ (self.right(i) @ v))

    def delta(self, i: int) -> torch.Tensor:
        """Materialise ΔWᵢ (m×n). For tests and small matrices only."""
        return self.left(i) @ self.right(i)
