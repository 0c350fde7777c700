"""Parallel-in-time evaluation of the antisymmetric recurrences: DEER (Lim et al. 2024) and quasi-DEER
(Gonzalez et al. 2024).

The recurrence h_t = f(h_{t-1}, u_t), t = 1..T, is solved for all steps at once by Newton's method on the whole
trajectory. Linearised around the current guess h^k,

    h^{k+1}_t = J_t h^{k+1}_{t-1} + c_t,   J_t = ∂f/∂h at h^k_{t-1},   c_t = f(h^k_{t-1}, u_t) − J_t h^k_{t-1},

a linear recurrence that an associative scan solves in O(log T) sequential steps. For both cells
J_t = I + diag(d_t) M, with d_t = ε(1 − a_t²) (A-RNN) or ε(a_t z_t(1 − z_t) + z_t(1 − a_t²)) (gated).

- "deer" scans the full J_t: quadratic convergence, but every combine is an n×n matrix product, so an
  iteration costs O(T B n³) work and O(T B n²) memory (at B = N = 128, T = 784 in fp32: 6.6 GB per copy of J,
  and the scan holds about three).
- "quasi" keeps diag(J_t) = 1 + d_t ⊙ diag(M) only (for the A-RNN 1 − γ d_t): an elementwise scan, O(T B n)
  per iteration besides one (T·B, n)×(n, n) GEMM; linear convergence, so more but much cheaper iterations.

Either way h_1 = f(h_0, u_1) is exact after one iteration and, inductively, h_k after k, so T iterations solve the
recurrence exactly: iterations are capped at T. Each iteration does at least the eager loop's whole GEMM work, so
on a CPU, whose sequential loop already runs its small GEMMs at full speed, this loses; it can win only on a
device that the per-step loop leaves idle, and only when few iterations suffice (small ε‖M‖T).

Gradients: the states are differentiable; the backward pass is the eager backend's reverse sweep (sequential
over T) with the local derivatives recomputed at the returned states, so it gives the exact gradient of the
recurrence to the accuracy the states converged to.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from arnn.backends.antisymmetric_scan import GATED, UNGATED, Recurrence, common_dtype

METHODS = ("deer", "quasi")
INITS = ("h0", "zeros")
TOL_ULPS = 100
"""Default stop: max |h^{k+1} − h^k| ≤ tol · max(1, max |h^{k+1}|) with tol = 100 ulps of the states' dtype
(1.2e-5 in float32, 2.2e-14 in float64).

Relative, because DEER's float32 scan over thousands of matrix products leaves a floor of rounding in the change
that grows with the states (measured: ~5e-5 for the gated ablation cell at T = 4096, where max |h| ≈ 37, about
12 ulps of it); an absolute 1e-5 there would never be met and the iterations would run on to T."""

Linearised = tuple[Tensor, Tensor, Tensor, tuple[Tensor, ...]]
"""f(h_prev, u), M h_prev, d with ∂f/∂h = I + diag(d) M, and the activations the eager backward saves."""
LocalStep = Callable[[Tensor, Tensor, Tensor, float], Linearised]


def ungated_step(h_prev: Tensor, u: Tensor, m: Tensor, eps: float) -> Linearised:
    """f = h + ε a, a = tanh(M h + u), for all steps at once (h_prev (T, B, n)); d = ε(1 − a²)."""
    mh = h_prev @ m.t()
    act = torch.tanh(mh + u)
    return h_prev + eps * act, mh, eps * (1 - act.square()), (act,)


def gated_step(h_prev: Tensor, u: Tensor, m: Tensor, eps: float) -> Linearised:
    """f = h + ε z ⊙ a, z = σ(M h + u^z), a = tanh(M h + u^h); d = ε(a z(1 − z) + z(1 − a²))."""
    mh = h_prev @ m.t()
    pre = u + mh.unsqueeze(2)
    gate, act = torch.sigmoid(pre[:, :, 0]), torch.tanh(pre[:, :, 1])
    eps_gate = eps * gate
    return h_prev + eps_gate * act, mh, eps_gate * (act * (1 - gate) + 1 - act.square()), (gate, act)


def _apply(a: Tensor, x: Tensor) -> Tensor:
    """A x for each row x (…, n), A (…, n, n) or a diagonal (…, n) of the shape of x."""
    return a * x if a.shape == x.shape else (a @ x.unsqueeze(-1)).squeeze(-1)


def associative_scan(a: Tensor, b: Tensor, products: bool = True) -> tuple[Tensor | None, Tensor]:
    """Inclusive scan of the affine maps x ↦ A_t x + b_t over dim 0: the t-th output is (A_t ⋯ A_1, x_t) with
    x_t = A_t x_{t-1} + b_t, x_0 = 0. A is (T, …, n, n) or diagonal (T, …, n); with `products=False` only the x_t
    are returned (None for the products), which saves the last level's products and their memory.

    Two maps compose as (A₂, b₂) ∘ (A₁, b₁) = (A₂A₁, A₂b₁ + b₂). Odd–even recursion (Ladner–Fischer): compose
    neighbouring pairs, scan the T/2 pairs, then fill in the even positions; O(T) compositions in 2⌈log₂ T⌉
    batched steps. (torch._higher_order_ops.associative_scan in combine_mode="generic" does the same but is a
    prototype and measured 2× slower on CPU here.)
    """
    steps = a.shape[0]
    if steps < 2:
        return (a if products else None), b
    compose = torch.mul if a.shape == b.shape else torch.matmul
    first, second = slice(0, steps - 1, 2), slice(1, None, 2)
    pair_a, pair_b = associative_scan(compose(a[second], a[first]), _apply(a[second], b[first]) + b[second])
    rest = (steps - 1) // 2
    out_b = torch.empty_like(b)
    out_b[0], out_b[1::2], out_b[2::2] = b[0], pair_b, _apply(a[2::2], pair_b[:rest]) + b[2::2]
    if not products:
        return None, out_b
    out_a = torch.empty_like(a)
    out_a[0], out_a[1::2], out_a[2::2] = a[0], pair_a, compose(a[2::2], pair_a[:rest])
    return out_a, out_b


@dataclass(frozen=True)
class Solution:
    """The states (T, B, n), the Newton iterations run, and max |h^k − h^{k−1}| of the last one."""

    states: Tensor
    iterations: int
    change: float


@torch.no_grad()
def newton(
    step: LocalStep,
    u: Tensor,
    h0: Tensor,
    m: Tensor,
    eps: float,
    method: str = "quasi",
    max_iters: int | None = None,
    tol: float | None = None,
    init: str = "h0",
) -> Solution:
    """Newton (DEER) or diagonal quasi-Newton iterations on all T states until
    max |h^{k+1} − h^k| ≤ tol · max(1, max |h^{k+1}|), tol defaulting to TOL_ULPS ulps of u's dtype.

    `max_iters` defaults to T, the number after which the states are exact; `init` is the first guess: h0 at
    every step or zeros.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    tol = TOL_ULPS * torch.finfo(u.dtype).eps if tol is None else tol
    steps = u.shape[0]
    limit = steps if max_iters is None else min(max_iters, steps)
    h = h0.expand(steps, *h0.shape).clone() if init == "h0" else h0.new_zeros(steps, *h0.shape)
    diag_m = m.diagonal()
    change, scale = float("inf"), 1.0
    iterations = 0
    while iterations < limit and not change <= tol * scale:
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        f, mh, d, _ = step(h_prev, u, m, eps)
        if method == "quasi":
            a = d * diag_m + 1
            b = f - a * h_prev
        else:
            a = d.unsqueeze(-1) * m
            a.diagonal(dim1=-2, dim2=-1).add_(1)  # I + diag(d) M, built in place: a is the largest tensor here
            b = f - h_prev - d * mh  # f − J h_prev without forming J h_prev
        # h_prev[0] = h0 is known: the first map is the constant f(h0, u_1), so the scan starts from x_0 = 0.
        a[0] = 0
        b[0] = f[0]
        h_next = associative_scan(a, b, products=False)[1]
        change, largest = torch.stack([(h_next - h).abs().max(), h_next.abs().max()]).tolist()
        scale = max(1.0, largest)
        h = h_next
        iterations += 1
    return Solution(h, iterations, change)


class _ParallelRecurrence(torch.autograd.Function):
    """States from `newton`; gradients from the eager backward with its activations recomputed at those states."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        u: Tensor,
        h0: Tensor,
        m: Tensor,
        eps: float,
        step: LocalStep,
        recurrence: Recurrence,
        options: dict,
    ) -> Tensor:
        h_all = newton(step, u, h0, m, eps, **options).states
        ctx.save_for_backward(u, h0, m, h_all)
        ctx.eps, ctx.step, ctx.recurrence = eps, step, recurrence
        return h_all

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        u, h0, m, h_all = ctx.saved_tensors
        *_, activations = ctx.step(torch.cat([h0.unsqueeze(0), h_all[:-1]]), u, m, ctx.eps)
        grads = ctx.recurrence.backward((h0, m, h_all, *activations), grad_y, ctx.eps)
        return (*grads, None, None, None, None)


def parallel_antisymmetric(
    u: Tensor,
    h0: Tensor,
    m: Tensor,
    eps: float,
    *,
    method: str = "quasi",
    max_iters: int | None = None,
    tol: float | None = None,
    init: str = "h0",
) -> Tensor:
    """All states (T, B, n) of h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t), solved in parallel over time."""
    options = {"method": method, "max_iters": max_iters, "tol": tol, "init": init}
    return _ParallelRecurrence.apply(*common_dtype(u, h0, m), eps, ungated_step, UNGATED, options)


def parallel_gated_antisymmetric(
    u: Tensor,
    h0: Tensor,
    m: Tensor,
    eps: float,
    *,
    method: str = "quasi",
    max_iters: int | None = None,
    tol: float | None = None,
    init: str = "h0",
) -> Tensor:
    """All states (T, B, n) of the gated recurrence, u (T, B, 2, n) = (u^z, u^h), solved in parallel over time."""
    options = {"method": method, "max_iters": max_iters, "tol": tol, "init": init}
    return _ParallelRecurrence.apply(*common_dtype(u, h0, m), eps, gated_step, GATED, options)
