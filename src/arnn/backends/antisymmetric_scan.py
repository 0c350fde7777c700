"""The `eager` backend: manual-backward scans of the antisymmetric recurrences in PyTorch.

Both cells have the form h_t = h_{t-1} + φ(M h_{t-1}, u_t), with the input projections u_t of all steps
computed beforehand in one matmul. The forward pass is a tight loop writing into preallocated (T, B, n)
buffers; the backward pass is one reverse loop of n×n matmuls, and the weight gradient ∂L/∂M is a single
large GEMM over all steps afterwards. States are rows: M h is computed as h Mᵀ.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable


def _reverse_sweep(grad_y: Tensor, coef: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients through h_t = h_{t-1} + φ_t(M h_{t-1}) where c_t = ∂φ_t/∂(M h_{t-1}) is diagonal.

    With g_t = ∂L/∂h_t and d_t = g_t ⊙ c_t: g_{t-1} = ∂L/∂y_{t-1} + g_t + d_t M.
    Returns g (T, B, n), d (T, B, n) and ∂L/∂h_0.
    """
    g = grad_y.contiguous().clone()
    d = torch.empty_like(g)
    for t in range(g.shape[0] - 1, 0, -1):
        torch.mul(g[t], coef[t], out=d[t])
        g[t - 1].add_(g[t]).addmm_(d[t], m)
    torch.mul(g[0], coef[0], out=d[0])
    return g, d, torch.addmm(g[0], d[0], m)


def _weight_grad(d: Tensor, h0: Tensor, h_all: Tensor) -> Tensor:
    """∂L/∂M = Σ_t d_tᵀ h_{t-1} as one GEMM over all steps."""
    grad_m = d[0].t() @ h0
    return grad_m.addmm_(d[1:].flatten(0, 1).t(), h_all[:-1].flatten(0, 1))


def _ungated_forward(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> tuple[Tensor, tuple[Tensor, ...]]:
    """h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t) for u (T, B, n); all h_t (T, B, n) and what the backward needs."""
    h_all = torch.empty_like(u)
    act = torch.empty_like(u)
    m_t = m.t()
    h = h0
    for t in range(u.shape[0]):
        torch.addmm(u[t], h, m_t, out=act[t])
        act[t].tanh_()
        torch.add(h, act[t], alpha=eps, out=h_all[t])
        h = h_all[t]
    return h_all, (h0, m, h_all, act)


def _ungated_backward(saved: tuple[Tensor, ...], grad_y: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """∂L/∂u, ∂L/∂h_0 and ∂L/∂M of `_ungated_forward` from ∂L/∂h_all."""
    h0, m, h_all, act = saved
    coef = act.square().neg_().add_(1).mul_(eps)  # ∂(ε tanh p)/∂p
    _, d, grad_h0 = _reverse_sweep(grad_y, coef, m)
    return d, grad_h0, _weight_grad(d, h0, h_all)


def _gated_forward(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> tuple[Tensor, tuple[Tensor, ...]]:
    """z_t = σ(M h_{t-1} + u^z_t), a_t = tanh(M h_{t-1} + u^h_t), h_t = h_{t-1} + ε z_t ⊙ a_t for u (T, B, 2, n)
    holding u^z and u^h; M h_{t-1} is computed once per step for both. All h_t and what the backward needs."""
    steps, batch, _, n = u.shape
    h_all = u.new_empty(steps, batch, n)
    gate = torch.empty_like(h_all)
    act = torch.empty_like(h_all)
    mh = u.new_empty(batch, n)
    pre = u.new_empty(batch, 2, n)
    m_t = m.t()
    h = h0
    for t in range(steps):
        torch.mm(h, m_t, out=mh)
        torch.add(u[t], mh.unsqueeze(1), out=pre)
        torch.sigmoid(pre[:, 0], out=gate[t])
        torch.tanh(pre[:, 1], out=act[t])
        torch.addcmul(h, gate[t], act[t], value=eps, out=h_all[t])
        h = h_all[t]
    return h_all, (h0, m, h_all, gate, act)


def _gated_backward(saved: tuple[Tensor, ...], grad_y: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """∂L/∂u (T, B, 2, n), ∂L/∂h_0 and ∂L/∂M of `_gated_forward` from ∂L/∂h_all."""
    h0, m, h_all, gate, act = saved
    eps_gate = gate * eps
    coef_z = (1 - gate).mul_(act).mul_(eps_gate)  # ∂(ε z a)/∂p_z = ε a z (1 − z)
    coef_h = act.square().neg_().add_(1).mul_(eps_gate)  # ∂(ε z a)/∂p_h = ε z (1 − a²)
    g, d, grad_h0 = _reverse_sweep(grad_y, coef_z + coef_h, m)
    grad_u = g.new_empty(*g.shape[:2], 2, g.shape[2])
    torch.mul(g, coef_z, out=grad_u[:, :, 0])
    torch.mul(g, coef_h, out=grad_u[:, :, 1])
    return grad_u, grad_h0, _weight_grad(d, h0, h_all)


@dataclass(frozen=True)
class Recurrence:
    """The forward loop of one cell and its hand-written backward."""

    forward: Callable[[Tensor, Tensor, Tensor, float], tuple[Tensor, tuple[Tensor, ...]]]
    backward: Callable[[tuple[Tensor, ...], Tensor, float], tuple[Tensor, Tensor, Tensor]]


UNGATED = Recurrence(_ungated_forward, _ungated_backward)
GATED = Recurrence(_gated_forward, _gated_backward)


class ManualBackwardScan(torch.autograd.Function):
    """All states (T, B, n) of a recurrence, differentiated by its hand-written backward."""

    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, h0: Tensor, m: Tensor, eps: float, recurrence: Recurrence) -> Tensor:
        h_all, saved = recurrence.forward(u, h0, m, eps)
        ctx.save_for_backward(*saved)
        ctx.eps, ctx.recurrence = eps, recurrence
        return h_all

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        return (*ctx.recurrence.backward(ctx.saved_tensors, grad_y, ctx.eps), None, None)


def common_dtype(u: Tensor, h0: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """u, h0, m in one dtype, the widest of theirs: under autocast u comes in bf16/fp16 while M stays fp32, and
    the state is then kept in fp32 (a bf16 state would round away steps h += ε·φ smaller than 2⁻⁸ |h|)."""
    dtype = torch.promote_types(torch.promote_types(u.dtype, h0.dtype), m.dtype)
    return u.to(dtype).contiguous(), h0.to(dtype).contiguous(), m.to(dtype)


def antisymmetric_scan(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t), u time-major (T, B, n)."""
    return ManualBackwardScan.apply(*common_dtype(u, h0, m), eps, UNGATED)


def gated_antisymmetric_scan(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of the gated recurrence, u time-major (T, B, 2, n) = (u^z, u^h)."""
    return ManualBackwardScan.apply(*common_dtype(u, h0, m), eps, GATED)
