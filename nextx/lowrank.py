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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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
        value, vector = eigh(core.numpy(), subset_by_index=[top, top], driver="evr")
    return torch.from_numpy(value).clamp_min(0).sqrt(), root_left.T @ torch.from_numpy(vector[:, 0])


@functools.cache
def _subset_eigensolver():
    """scipy's eigh (LAPACK syevr with subset_by_index) and a controller of scipy's OpenBLAS threads,
    imported on first use (scipy adds ~0.5 s to start-up)."""
    import scipy.linalg
    from threadpoolctl import ThreadpoolController

    return scipy.linalg.eigh, ThreadpoolController()


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


@dataclass
class FactoredUpdate:
    """A matrix in the span of a module's checkpoints: Σᵢ cᵢ·ΔWᵢ + Σₖ σₖ·uₖ·vₖᵀ (ΔWᵢ = global deltas)."""

    coefs: dict[int, float] = field(default_factory=dict)
    rank1: list[tuple[float, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def __add__(self, other: FactoredUpdate) -> FactoredUpdate:
        coefs = dict(self.coefs)
        for i, c in other.coefs.items():
            coefs[i] = coefs.get(i, 0.0) + c
        return FactoredUpdate(coefs, self.rank1 + other.rank1)

    def __mul__(self, alpha: float) -> FactoredUpdate:
        return FactoredUpdate({i: alpha * c for i, c in self.coefs.items()}, [(alpha * s, u, v) for s, u, v in self.rank1])

    __rmul__ = __mul__

    def __neg__(self) -> FactoredUpdate:
        return self * -1.0

    def __sub__(self, other: FactoredUpdate) -> FactoredUpdate:
        return self + (-other)


def checkpoint(i: int) -> FactoredUpdate:
    """The global delta ΔWᵢ = Wᵢ − W₀ of checkpoint i."""
    return FactoredUpdate({i: 1.0})


def update_inner(stack: FactorStack | DenseStack, x: FactoredUpdate, y: FactoredUpdate) -> float:
    """Frobenius ⟨X, Y⟩ from cached Gram blocks and rank-1 terms, never forming an m×n matrix."""
    total = sum(ci * cj * stack.inner(i, j) for i, ci in x.coefs.items() for j, cj in y.coefs.items() if ci and cj)
    for coefs, terms in ((x.coefs, y.rank1), (y.coefs, x.rank1)):
        total += sum(c * s * stack.bilinear(i, u, v) for i, c in coefs.items() if c for s, u, v in terms)
    total += sum(
        s1 * s2 * float(u1.double() @ u2.double()) * float(v1.double() @ v2.double())
        for s1, u1, v1 in x.rank1 for s2, u2, v2 in y.rank1
    )
    return float(total)


def factors_of(stack: FactorStack, update: FactoredUpdate) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, R) with L·R = the update exactly: L = [cᵢ·Lᵢ … σₖ·uₖ …], R = [Rᵢ; … vₖᵀ …]."""
    lefts = [c * stack.left(i) for i, c in sorted(update.coefs.items()) if c]
    rights = [stack.right(i) for i, c in sorted(update.coefs.items()) if c]
    lefts += [s * u.to(DTYPE).unsqueeze(1) for s, u, _ in update.rank1 if s]
    rights += [v.to(DTYPE).unsqueeze(0) for s, _, v in update.rank1 if s]
    if not lefts:
        m, n = stack.shape
        return torch.zeros(m, 0, dtype=DTYPE), torch.zeros(0, n, dtype=DTYPE)
    return torch.cat(lefts, 1), torch.cat(rights, 0)


def dense_of(stack: FactorStack | DenseStack, update: FactoredUpdate, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    """Materialise the update as an m×n matrix (factored: L·R in ``dtype``; dense stacks: float32)."""
    if isinstance(stack, FactorStack):
        left, right = factors_of(stack, update)
        return left.to(dtype) @ right.to(dtype)
    matrix = torch.zeros(stack.shape, dtype=torch.float32)
    for i, c in update.coefs.items():
        if c:
            matrix.add_(stack.deltas[i], alpha=float(c))
    for s, u, v in update.rank1:
        matrix.add_(torch.outer(u.float(), v.float()), alpha=float(s))
    return matrix


def truncate(left: torch.Tensor, right: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Best rank-`rank` approximation of L·R in factored form (thin QRs + core SVD), and its
    relative Frobenius error ‖L·R − L'·R'‖ / ‖L·R‖."""
    q_left, r_left = torch.linalg.qr(left)
    q_right, r_right = torch.linalg.qr(right.T)
    U, S, Vh = torch.linalg.svd(r_left @ r_right.T)
    k = min(rank, len(S))
    total = float(S.norm())
    error = float(S[k:].norm()) / total if total > 0 else 0.0
    root = S[:k].sqrt()
    return (q_left @ U[:, :k]) * root, root.unsqueeze(1) * (Vh[:k] @ q_right.T), error
