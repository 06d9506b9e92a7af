"""`FactoredUpdate`: a matrix in the span of a module's checkpoints (plus rank-1 terms), and the
exact operations on it — inner products, factors, materialisation, truncation — from the stacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nextx.lowrank.dense_stack import DenseStack
from nextx.lowrank.factor_stack import FactorStack
from nextx.lowrank.spectrum import DTYPE


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


def _core_svd(left: torch.Tensor, right: torch.Tensor):
    """L·R = Q_L·(U·diag(S)·Vh)·Q_Rᵀ from thin QRs of L and Rᵀ and the SVD of the small core."""
    q_left, r_left = torch.linalg.qr(left)
    q_right, r_right = torch.linalg.qr(right.T)
    U, S, Vh = torch.linalg.svd(r_left @ r_right.T)
    return q_left, U, S, Vh, q_right


def _split(q_left, U, S, Vh, q_right, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    root = S[:k].sqrt()
    return (q_left @ U[:, :k]) * root, root.unsqueeze(1) * (Vh[:k] @ q_right.T)


def truncate(left: torch.Tensor, right: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Best rank-`rank` approximation of L·R in factored form (thin QRs + core SVD), and its
    relative Frobenius error ‖L·R − L'·R'‖ / ‖L·R‖."""
    parts = _core_svd(left, right)
    S = parts[2]
    k = min(rank, len(S))
    total = float(S.norm())
    error = float(S[k:].norm()) / total if total > 0 else 0.0
    return (*_split(*parts, k), error)


def compact(left: torch.Tensor, right: torch.Tensor, rtol: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """The same product L·R with as many factors as its numerical rank (singular values below ``rtol``
    × the largest dropped: float32 round-off), in float64. Keeps sums of many low-rank terms small."""
    parts = _core_svd(left.to(DTYPE), right.to(DTYPE))
    S = parts[2]
    k = int((rtol * S[0] < S).sum()) if len(S) and float(S[0]) > 0 else 0
    return _split(*parts, k)
