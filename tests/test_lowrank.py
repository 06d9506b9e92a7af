"""Exactness of the factored top singular triplet against a dense SVD (float64, rel. tol 1e-10)."""

import pytest
import torch

from nextx.lowrank import DenseStack, FactorStack, Spectrum, align_sign, top_singular_triplet

TOL = 1e-10


def _dense_top(matrix: torch.Tensor):
    U, S, Vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return S, U[:, 0], Vh[0]


@pytest.mark.parametrize("m,n,r", [(40, 30, 4), (7, 50, 3), (64, 64, 16)])
def test_top_triplet_matches_dense_svd(m, n, r):
    g = torch.Generator().manual_seed(m * n + r)
    B, A = torch.randn(m, r, generator=g, dtype=torch.float64), torch.randn(r, n, generator=g, dtype=torch.float64)
    sigma, u, v = top_singular_triplet(B, A, scale=0.7)
    S, u_ref, v_ref = _dense_top(0.7 * B @ A)
    assert abs(sigma - S[0].item()) <= TOL * S[0].item()
    assert abs(abs(float(u @ u_ref)) - 1) < TOL
    assert abs(abs(float(v @ v_ref)) - 1) < TOL
    # σ·u·vᵀ reproduces the rank-1 part exactly
    assert torch.allclose(sigma * torch.outer(u, v), S[0] * torch.outer(u_ref, v_ref), atol=TOL * S[0].item())


def test_bf16_factors_are_computed_in_float64():
    g = torch.Generator().manual_seed(1)
    B = torch.randn(30, 4, generator=g).bfloat16()
    A = torch.randn(4, 20, generator=g).bfloat16()
    sigma, u, v = top_singular_triplet(B, A)
    assert u.dtype == torch.float64
    S, _, _ = _dense_top(B.double() @ A.double())
    assert abs(sigma - S[0].item()) <= TOL * S[0].item()


def test_rank_deficient_and_zero_factors():
    B = torch.zeros(10, 4, dtype=torch.float64)
    B[:, 0] = torch.arange(10.0)
    A = torch.randn(4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    sigma, u, v = top_singular_triplet(B, A)
    S, _, _ = _dense_top(B @ A)
    assert abs(sigma - S[0].item()) <= TOL * S[0].item()
    sigma0, u0, _ = top_singular_triplet(torch.zeros(10, 4), A)
    assert sigma0 == 0.0 and u0.shape == (10,)


def test_factor_stack_combinations_and_inner_products():
    g = torch.Generator().manual_seed(3)
    lefts = [torch.randn(25, 3, generator=g, dtype=torch.float64) for _ in range(4)]
    rights = [torch.randn(3, 18, generator=g, dtype=torch.float64) for _ in range(4)]
    stack = FactorStack(lefts, rights)
    dense = [lf @ rt for lf, rt in zip(lefts, rights, strict=True)]
    for coefs in ({2: 1.0}, {2: 1.0, 1: -1.0}, {3: 1.0, 0: -1.0}, {0: 0.5, 1: 2.0, 3: -1.5}):
        spec = stack.spectrum(coefs)
        S, _, _ = _dense_top(sum(c * dense[i] for i, c in coefs.items()))
        assert abs(spec.sigma - S[0].item()) <= TOL * S[0].item()
        k = len(spec.singular_values)  # rank ≤ k: the dense SVD's σ beyond k are round-off
        assert torch.allclose(spec.singular_values, S[:k], atol=1e-9 * S[0].item())
        assert S[k:].max() < 1e-9 * S[0] if len(S) > k else True
        assert abs(spec.energy - (S[0] / S.sum()).item()) < 1e-9
    assert abs(stack.inner(1, 3) - float((dense[1] * dense[3]).sum())) < 1e-9 * dense[1].norm() * dense[3].norm()
    assert stack.spectrum({}).sigma == 0.0


def test_dense_stack_uses_a_top_k_solver_close_to_the_svd():
    g = torch.Generator().manual_seed(4)
    u0, v0 = torch.randn(60, generator=g), torch.randn(40, generator=g)
    matrix = 5 * torch.outer(u0 / u0.norm(), v0 / v0.norm()) + 0.01 * torch.randn(60, 40, generator=g)
    spec = DenseStack([matrix]).spectrum({0: 1.0})
    S, u_ref, _ = _dense_top(matrix)
    assert abs(spec.sigma - S[0].item()) < 1e-4 * S[0].item()
    assert abs(abs(float(spec.u @ u_ref)) - 1) < 1e-4
    assert spec.energy is None


def test_align_sign_flips_u_and_v_together():
    u, v = torch.tensor([0.6, -0.8], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    spec = Spectrum(2.0, u, v)
    flipped = align_sign(spec, torch.tensor([-1.0, 0.0]))
    assert float(flipped.u @ torch.tensor([-1.0, 0.0], dtype=torch.float64)) >= 0
    assert torch.equal(torch.outer(flipped.u, flipped.v), torch.outer(u, v))
    canonical = align_sign(spec, None)  # largest |u| entry (-0.8) becomes positive
    assert canonical.u[1] > 0


@pytest.mark.parametrize("all_values", [True, False])
def test_local_delta_of_nearly_equal_checkpoints(all_values):
    """W_T − W_{T−1} with factors 1e-4 apart: the stacked Gram G_L is nearly singular (Cholesky
    pivots ~1e-8), yet σ₁ and u, v match the dense SVD to 1e-6 relative (the delta is 1e-4 of ‖W_T‖);
    the σ₁-only path (subset eigensolver) agrees and reports no energy."""
    g = torch.Generator().manual_seed(5)
    B, A = torch.randn(80, 6, generator=g, dtype=torch.float64), torch.randn(6, 50, generator=g, dtype=torch.float64)
    B2 = B + 1e-4 * torch.randn(80, 6, generator=g, dtype=torch.float64)
    A2 = A + 1e-4 * torch.randn(6, 50, generator=g, dtype=torch.float64)
    stack = FactorStack([B, B2], [A, A2])
    spec = stack.spectra([{1: 1.0, 0: -1.0}], all_values=all_values)[0]
    S, u_ref, v_ref = _dense_top(B2 @ A2 - B @ A)
    assert abs(spec.sigma - S[0].item()) <= 1e-6 * S[0].item()
    assert abs(abs(float(spec.u @ u_ref)) - 1) < 1e-6 and abs(abs(float(spec.v @ v_ref)) - 1) < 1e-6
    assert (spec.energy is not None) == all_values


def test_lazy_stack_reads_only_what_a_computation_needs():
    g = torch.Generator().manual_seed(6)
    factors = [(torch.randn(12, 2, generator=g, dtype=torch.float64), torch.randn(2, 9, generator=g, dtype=torch.float64))
               for _ in range(5)]
    read = []

    def load(i):
        read.append(i)
        return factors[i]

    stack = FactorStack.lazy(5, load)
    assert len(stack) == 5 and read == []
    local = stack.spectrum({4: 1.0, 3: -1.0})
    assert sorted(set(read)) == [3, 4] and len(read) == 2  # each checkpoint read once
    S, _, _ = _dense_top(factors[4][0] @ factors[4][1] - factors[3][0] @ factors[3][1])
    assert abs(local.sigma - S[0].item()) <= TOL * S[0].item() and stack.shape == (12, 9)


def test_compact_keeps_the_product_at_its_numerical_rank():
    """Sums of low-rank terms that repeat each other (as accumulated jump offsets do) collapse to their
    true rank, with the product unchanged (float64, 1e-12 relative)."""
    import torch

    from nextx.lowrank import compact

    g = torch.Generator().manual_seed(0)
    base_left, base_right = torch.randn(40, 3, generator=g, dtype=torch.float64), torch.randn(3, 30, generator=g,
                                                                                             dtype=torch.float64)
    left = torch.cat([base_left, 2 * base_left, -base_left[:, :1]], 1)  # 7 columns, rank 3
    right = torch.cat([base_right, base_right, base_right[:1]], 0)
    small_left, small_right = compact(left, right)
    assert small_left.shape == (40, 3) and small_right.shape == (3, 30)
    product = left @ right
    assert float((small_left @ small_right - product).norm() / product.norm()) < 1e-12
    zero_left, zero_right = compact(torch.zeros(5, 2), torch.zeros(2, 4))
    assert zero_left.shape == (5, 0) and zero_right.shape == (0, 4)
