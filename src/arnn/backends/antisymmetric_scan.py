"""Manual-backward scans of the antisymmetric recurrences.

Both cells have the form h_t = h_{t-1} + φ(M h_{t-1}, u_t), with the input projections u_t of all steps
computed beforehand in one matmul. The forward pass is a tight loop writing into preallocated (T, B, n)
buffers; the backward pass is one reverse loop of n×n matmuls, and the weight gradient ∂L/∂M is a single
large GEMM over all steps afterwards. States are rows: M h is computed as h Mᵀ.
"""

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


class _AntisymmetricScan(torch.autograd.Function):
    """h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t) for u (T, B, n); returns all h_t (T, B, n)."""

    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
        h_all = torch.empty_like(u)
        act = torch.empty_like(u)
        m_t = m.t()
        h = h0
        for t in range(u.shape[0]):
            torch.addmm(u[t], h, m_t, out=act[t])
            act[t].tanh_()
            torch.add(h, act[t], alpha=eps, out=h_all[t])
            h = h_all[t]
        ctx.save_for_backward(h0, m, h_all, act)
        ctx.eps = eps
        return h_all

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        h0, m, h_all, act = ctx.saved_tensors
        coef = act.square().neg_().add_(1).mul_(ctx.eps)  # ∂(ε tanh p)/∂p
        _, d, grad_h0 = _reverse_sweep(grad_y, coef, m)
        return d, grad_h0, _weight_grad(d, h0, h_all), None


class _GatedAntisymmetricScan(torch.autograd.Function):
    """z_t = σ(M h_{t-1} + u^z_t), a_t = tanh(M h_{t-1} + u^h_t), h_t = h_{t-1} + ε z_t ⊙ a_t.

    u is (T, B, 2, n) holding u^z and u^h; M h_{t-1} is computed once per step for both.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
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
        ctx.save_for_backward(h0, m, h_all, gate, act)
        ctx.eps = eps
        return h_all

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        h0, m, h_all, gate, act = ctx.saved_tensors
        eps_gate = gate * ctx.eps
        coef_z = (1 - gate).mul_(act).mul_(eps_gate)  # ∂(ε z a)/∂p_z = ε a z (1 − z)
        coef_h = act.square().neg_().add_(1).mul_(eps_gate)  # ∂(ε z a)/∂p_h = ε z (1 − a²)
        g, d, grad_h0 = _reverse_sweep(grad_y, coef_z + coef_h, m)
        grad_u = g.new_empty(*g.shape[:2], 2, g.shape[2])
        torch.mul(g, coef_z, out=grad_u[:, :, 0])
        torch.mul(g, coef_h, out=grad_u[:, :, 1])
        return grad_u, grad_h0, _weight_grad(d, h0, h_all), None


def antisymmetric_scan(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t), u time-major (T, B, n)."""
    return _AntisymmetricScan.apply(u.contiguous(), h0, m, eps)


def gated_antisymmetric_scan(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of the gated recurrence, u time-major (T, B, 2, n) = (u^z, u^h)."""
    return _GatedAntisymmetricScan.apply(u.contiguous(), h0, m, eps)
