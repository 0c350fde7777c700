"""Persistent-RNN Triton kernels for the A-RNN recurrences (`model.backend=fused`).

One program owns BLOCK_B rows of the batch for all T steps. It loads M once (zero-padded to BLOCK_N, the next power
of two ≥ n, n ≤ 256), keeps it on chip and runs the whole loop in the kernel:

    forward   h_t = h_{t-1} + φ_t(h_{t-1} Mᵀ),  φ_t(p) = ε·tanh(p + u_t)  or, gated, ε·σ(p + u^z_t) ⊙ tanh(p + u^h_t)
    backward  g_t = ∂L/∂y_t + g_{t+1} + d_{t+1} M,  d_t = g_t ⊙ c_t,  c_t = ∂φ_t/∂p   (t = T..1; ∂L/∂h_0 = g_1 + d_1 M)

writing every h_t (and the activations the backward needs) resp. every d_t. ∂L/∂M = Σ_t d_tᵀ h_{t-1} is then one GEMM
in torch. The math is the reverse sweep of `antisymmetric_scan`, which these kernels are tested against.

Precision: the state h and the backward carry g stay fp32 in the kernel (fp64 for fp64 inputs); the matmul operands
take u's dtype, so under bf16/fp16 autocast the matmul runs on tensor cores with fp32 accumulation, and fp32 uses TF32
only where `torch.get_float32_matmul_precision()` allows it. Output dtype: the states come out in u's dtype (bf16/fp16
under autocast, like any autocast matmul); gradients come out in the dtype of their input (∂L/∂M in fp32).

On chip: Triton stages M in shared memory. Compiled for sm_90 (H100, 227 KB per block), the kernels need 72 KB
(forward) and 112-128 KB (backward) for fp32 at n ≤ 128, 144 KB for bf16/fp16 at n ≤ 256, but 272-372 KB for fp32 at
128 < n ≤ 256 (padded to 256): such a launch is a ConfigError, and `auto`, whose probe is a real call at the model's
size and dtype, falls back to eager there.
"""

import contextlib
import functools
from collections.abc import Iterator

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable
from triton.runtime.errors import OutOfResources

from arnn.backends.antisymmetric_scan import _weight_grad
from arnn.errors import ConfigError

MAX_HIDDEN = 256
BLOCK_B = 16  # rows per program; tl.dot needs every block dimension ≥ 16


def _forward_kernel(
    u_ptr,  # (T, B, n) or, gated, (T, B, 2, n) = (u^z, u^h)
    h0_ptr,  # (B, n)
    m_ptr,  # (n, n)
    eps_ptr,  # (1,) holding ε in the state dtype
    h_ptr,  # (T, B, n) out: h_t
    act_ptr,  # (T, B, n) out: tanh(·)
    gate_ptr,  # (T, B, n) out: σ(·) (gated only)
    steps,
    batch,
    n,
    GATED: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_N)
    mask = (rows[:, None] < batch) & (cols[None, :] < n)
    state = rows[:, None] * n + cols[None, :]
    gates = 2 if GATED else 1
    u_rows = rows[:, None] * (gates * n) + cols[None, :]
    eps = tl.load(eps_ptr)
    dot_dtype = tl.float32 if DOT_FP32 else u_ptr.dtype.element_ty
    # Mᵀ[k, j] = M[j, k], loaded once and reused for all T steps.
    mt = tl.load(m_ptr + cols[None, :] * n + cols[:, None], mask=(cols[:, None] < n) & (cols[None, :] < n), other=0.0)
    mt = mt.to(dot_dtype)
    h = tl.load(h0_ptr + state, mask=mask, other=0.0).to(eps.dtype)
    for _ in range(steps):
        mh = tl.dot(h.to(dot_dtype), mt, input_precision=PRECISION).to(eps.dtype)
        p = mh + tl.load(u_ptr + u_rows + (gates - 1) * n, mask=mask, other=0.0).to(eps.dtype)
        # tanh and σ from tl.exp: libdevice's tanh has no interpreter version, and Triton's own jitted helpers
        # (tl.sigmoid, tl.zeros) were wrapped for one mode when triton was imported, so only builtins serve both.
        a = 2 / (1 + tl.exp(-2 * p)) - 1
        if GATED:
            z = 1 / (1 + tl.exp(-(mh + tl.load(u_ptr + u_rows, mask=mask, other=0.0).to(eps.dtype))))
            h = h + eps * z * a
            tl.store(gate_ptr + state, z.to(gate_ptr.dtype.element_ty), mask=mask)
            gate_ptr += batch * n
        else:
            h = h + eps * a
        tl.store(act_ptr + state, a.to(act_ptr.dtype.element_ty), mask=mask)
        tl.store(h_ptr + state, h.to(h_ptr.dtype.element_ty), mask=mask)
        u_ptr += batch * gates * n
        act_ptr += batch * n
        h_ptr += batch * n


def _backward_kernel(
    grad_y_ptr,  # (T, B, n), pointing at step T
    act_ptr,  # (T, B, n), pointing at step T
    gate_ptr,  # (T, B, n), pointing at step T (gated only)
    m_ptr,  # (n, n)
    eps_ptr,  # (1,) holding ε in the state dtype
    d_ptr,  # (T, B, n) out, pointing at step T: d_t = g_t ⊙ c_t
    grad_u_ptr,  # (T, B, 2, n) out, pointing at step T: g_t ⊙ (c^z_t, c^h_t) (gated only)
    grad_h0_ptr,  # (B, n) out
    steps,
    batch,
    n,
    GATED: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_N)
    mask = (rows[:, None] < batch) & (cols[None, :] < n)
    state = rows[:, None] * n + cols[None, :]
    u_rows = rows[:, None] * (2 * n) + cols[None, :]
    eps = tl.load(eps_ptr)
    dot_dtype = tl.float32 if DOT_FP32 else act_ptr.dtype.element_ty
    m = tl.load(m_ptr + cols[:, None] * n + cols[None, :], mask=(cols[:, None] < n) & (cols[None, :] < n), other=0.0)
    m = m.to(dot_dtype)
    carry = tl.full((BLOCK_B, BLOCK_N), 0, dtype=eps.dtype)  # g_{t+1} + d_{t+1} M
    for _ in range(steps):
        g = carry + tl.load(grad_y_ptr + state, mask=mask, other=0.0).to(eps.dtype)
        a = tl.load(act_ptr + state, mask=mask, other=0.0).to(eps.dtype)
        if GATED:
            z = tl.load(gate_ptr + state, mask=mask, other=0.0).to(eps.dtype)
            coef_z = eps * a * z * (1 - z)  # ∂(ε z a)/∂p_z
            coef_h = eps * z * (1 - a * a)  # ∂(ε z a)/∂p_h
            tl.store(grad_u_ptr + u_rows, (g * coef_z).to(grad_u_ptr.dtype.element_ty), mask=mask)
            tl.store(grad_u_ptr + u_rows + n, (g * coef_h).to(grad_u_ptr.dtype.element_ty), mask=mask)
            d = g * (coef_z + coef_h)
            gate_ptr -= batch * n
            grad_u_ptr -= batch * 2 * n
        else:
            d = g * eps * (1 - a * a)
        tl.store(d_ptr + state, d, mask=mask)
        carry = g + tl.dot(d.to(dot_dtype), m, input_precision=PRECISION).to(eps.dtype)
        grad_y_ptr -= batch * n
        act_ptr -= batch * n
        d_ptr -= batch * n
    tl.store(grad_h0_ptr + state, carry.to(grad_h0_ptr.dtype.element_ty), mask=mask)


@functools.cache
def _kernels(interpret: bool) -> tuple:
    """The jitted kernels: `triton.jit` reads TRITON_INTERPRET when it wraps a function, so wrap per mode on use."""
    del interpret  # the cache key
    return triton.jit(_forward_kernel), triton.jit(_backward_kernel)


def _launch_options(u: Tensor, n: int) -> dict:
    interpret = triton.knobs.runtime.interpret
    exact_fp32 = u.dtype == torch.float32 and torch.get_float32_matmul_precision() == "highest"
    block_n = max(16, triton.next_power_of_2(n))
    return {
        # Triton 3.8's interpreter multiplies bf16 operands as their raw uint16 bits; multiply those in fp32 there.
        "DOT_FP32": interpret and u.dtype == torch.bfloat16,
        # TF32 (Triton's default) unless fp32 matmuls must be exact; it matters only for fp32 operands.
        "PRECISION": "ieee" if exact_fp32 else "tf32",
        "BLOCK_B": BLOCK_B,
        "BLOCK_N": block_n,
        "num_warps": 4 if block_n <= 64 else 8,
    }


@contextlib.contextmanager
def _launching(tensor: Tensor, n: int) -> Iterator[None]:
    """Launch on the tensor's CUDA device (Triton uses the current one; the interpreter runs on the CPU), and turn
    a kernel that does not fit this GPU into a one-line ConfigError."""
    with torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext():
        try:
            yield
        except OutOfResources as error:
            raise ConfigError(
                f"model.backend=fused: {n}×{n} M in {tensor.dtype} does not fit on chip on this GPU ({error.name}: "
                f"needs {error.required}, has {error.limit}); use model.backend=auto or eager, or bf16 autocast"
            ) from error


def _state_eps(eps: float, u: Tensor) -> Tensor:
    """ε as a one-element tensor whose dtype is the kernel's state dtype (a float argument would be rounded to fp32)."""
    return torch.full((1,), eps, dtype=torch.float64 if u.dtype == torch.float64 else torch.float32, device=u.device)


class _FusedScan(torch.autograd.Function):
    """All states (T, B, n) of the (gated) recurrence, forward and backward each in one kernel launch."""

    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, h0: Tensor, m: Tensor, eps: float, gated: bool) -> Tensor:
        steps, batch, n = u.shape[0], u.shape[1], m.shape[0]
        h_all = u.new_empty(steps, batch, n)
        act = torch.empty_like(h_all)
        gate = torch.empty_like(h_all) if gated else act
        eps_t = _state_eps(eps, u)
        options = _launch_options(u, n)
        forward_kernel, _ = _kernels(triton.knobs.runtime.interpret)
        with _launching(u, n):
            forward_kernel[(triton.cdiv(batch, BLOCK_B),)](
                u, h0, m, eps_t, h_all, act, gate, steps, batch, n, GATED=gated, **options
            )
        ctx.save_for_backward(h0, m, h_all, act, gate, eps_t)
        ctx.gated, ctx.u_dtype, ctx.options = gated, u.dtype, options
        return h_all

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None]:
        h0, m, h_all, act, gate, eps_t = ctx.saved_tensors
        steps, batch, n = h_all.shape
        grad_y = grad_y.contiguous()
        d = torch.empty(steps, batch, n, dtype=eps_t.dtype, device=h_all.device)
        grad_u = h_all.new_empty(steps, batch, 2, n) if ctx.gated else d
        grad_h0 = torch.empty_like(h0)
        _, backward_kernel = _kernels(triton.knobs.runtime.interpret)
        # The sweep runs from step T down: pass views that start at step T and step back by one (B, n) slice.
        with _launching(h_all, n):
            backward_kernel[(triton.cdiv(batch, BLOCK_B),)](
                grad_y[-1], act[-1], gate[-1], m, eps_t, d[-1], grad_u[-1], grad_h0, steps, batch, n,
                GATED=ctx.gated, **ctx.options,
            )  # fmt: skip
        grad_m = _weight_grad(d, h0.to(d.dtype), h_all.to(d.dtype)).to(m.dtype)
        return grad_u.to(ctx.u_dtype), grad_h0, grad_m, None, None


def _check(m: Tensor) -> None:
    if m.shape[0] > MAX_HIDDEN:
        raise ValueError(f"the fused kernel keeps M on chip for hidden sizes up to {MAX_HIDDEN}, got {m.shape[0]}")


def fused_antisymmetric(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t), u time-major (T, B, n)."""
    _check(m)
    return _FusedScan.apply(u.contiguous(), h0.contiguous(), m.contiguous(), eps, False)


def fused_gated_antisymmetric(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of the gated recurrence, u time-major (T, B, 2, n) = (u^z, u^h)."""
    _check(m)
    return _FusedScan.apply(u.contiguous(), h0.contiguous(), m.contiguous(), eps, True)
