"""The `graph` backend: the eager scans' loops captured as CUDA graphs.

The eager forward launches about 4 small kernels per step and its backward about 3, so at T = 784 a pass is
thousands of launches whose CPU overhead dwarfs the work; a CUDA graph replays them all in one launch. The forward
loop and the backward loop (reverse sweep and the one weight-gradient GEMM) are each captured once into static
buffers; a call copies u, h0 and M in, replays, and copies the states out (the gradients likewise).

Constraints: shapes are static, so each (gated, u's shape, dtype, device, ε, with or without backward) is captured
on its first call (3 warm-up passes, then capture) and replayed afterwards; a new shape, such as a smaller last
batch, captures again. The last 8 captures are kept, each with its own buffers. The activations saved for the
backward live in the capture's buffers, so a forward's backward must run before the next forward of the same
shape with grad (as in any training step); otherwise the backward raises instead of returning wrong gradients.
Like eager, it runs in the widest of the input dtypes, so fp32 under autocast.
"""

import functools

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from arnn.backends.antisymmetric_scan import GATED, UNGATED, Recurrence, common_dtype

WARMUP_PASSES = 3
KEPT_CAPTURES = 8


class _Capture:
    """Static inputs, the graphs that run the recurrence on them, and the static outputs they fill."""

    def __init__(self, recurrence: Recurrence, u: Tensor, n: int, eps: float, with_backward: bool) -> None:
        steps, batch = u.shape[:2]
        self.u, self.h0, self.m = torch.zeros_like(u), u.new_zeros(batch, n), u.new_zeros(n, n)
        self.grad_y = u.new_zeros(steps, batch, n)
        self.generation = 0  # forward replays so far; a backward must belong to the latest one
        stream = torch.cuda.Stream(u.device)
        stream.wait_stream(torch.cuda.current_stream(u.device))
        with torch.cuda.stream(stream):  # warm-up off the capture, so lazy cuBLAS set-up is not captured
            for _ in range(WARMUP_PASSES):
                _, saved = recurrence.forward(self.u, self.h0, self.m, eps)
                if with_backward:
                    recurrence.backward(saved, self.grad_y, eps)
        torch.cuda.current_stream(u.device).wait_stream(stream)
        self.forward = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.forward):
            self.h_all, self.saved = recurrence.forward(self.u, self.h0, self.m, eps)
        if with_backward:
            # The backward always replays after its forward, so both graphs can share one memory pool.
            self.backward = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.backward, pool=self.forward.pool()):
                self.grads = recurrence.backward(self.saved, self.grad_y, eps)


@functools.lru_cache(maxsize=KEPT_CAPTURES)
def _capture(
    gated: bool, shape: torch.Size, dtype: torch.dtype, device: torch.device, n: int, eps: float, with_backward: bool
) -> _Capture:
    # Normal (not inference-mode) buffers, so a capture made during validation also serves later no-grad calls.
    with torch.inference_mode(False), torch.no_grad(), torch.cuda.device(device), torch.autocast("cuda", enabled=False):
        u = torch.empty(shape, dtype=dtype, device=device)
        return _Capture(GATED if gated else UNGATED, u, n, eps, with_backward)


class _GraphedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, h0: Tensor, m: Tensor, eps: float, capture: _Capture) -> Tensor:
        capture.u.copy_(u)
        capture.h0.copy_(h0)
        capture.m.copy_(m)
        capture.forward.replay()
        capture.generation += 1
        ctx.capture, ctx.generation = capture, capture.generation
        return capture.h_all.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        capture = ctx.capture
        if capture.generation != ctx.generation:
            raise RuntimeError(
                "model.backend=graph: a forward of the same shape ran before this backward and overwrote its "
                "saved states; run each backward before the next forward, or use model.backend=eager"
            )
        capture.grad_y.copy_(grad_y)
        capture.backward.replay()
        return (*(grad.clone() for grad in capture.grads), None, None)


def _graphed(u: Tensor, h0: Tensor, m: Tensor, eps: float, gated: bool) -> Tensor:
    u, h0, m = common_dtype(u, h0, m)
    with_backward = torch.is_grad_enabled() and any(t.requires_grad for t in (u, h0, m))
    capture = _capture(gated, u.shape, u.dtype, u.device, m.shape[0], float(eps), with_backward)
    return _GraphedScan.apply(u, h0, m, eps, capture)


def graphed_antisymmetric(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t), u time-major (T, B, n), on CUDA."""
    return _graphed(u, h0, m, eps, gated=False)


def graphed_gated_antisymmetric(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of the gated recurrence, u time-major (T, B, 2, n) = (u^z, u^h), on CUDA."""
    return _graphed(u, h0, m, eps, gated=True)
