"""Full-capacity unitary RNN (Wisdom, Powers, Hershey, Le Roux, Atlas — NeurIPS 2016)."""

import torch
from torch import Tensor, nn

from arnn.cells.base import check_positive
from arnn.cells.complex_state import ComplexStateCell, random_unitary
from arnn.cells.unitary import UnitaryRNNCell
from arnn.errors import ConfigError

RECURRENT_INITS = ("haar", "urnn_product")


def urnn_product_unitary(n: int) -> Tensor:
    """W = D₃ R₂ F⁻¹ D₂ Π R₁ F D₁ of a freshly drawn uRNN (θ ~ U(±π), random reflections and permutation), as the FC
    uRNN authors' MNIST code starts its full unitary matrix (stwisdom/urnn, models.py `initialize_unitary`, init
    "rand")."""
    seed = int(torch.randint(0, 2**31 - 1, ()))
    return UnitaryRNNCell(1, n, permutation_seed=seed).recurrent_matrix().detach()


class FullCapacityUnitaryCell(ComplexStateCell):
    """h_t = modReLU(W h_{t-1} + V x_t), complex h, W ∈ U(n) with all n² degrees of freedom.

    W is not moved by the optimizer: after each optimizer step it follows the Cayley retraction along the
    Stiefel manifold, with G = ∂L/∂Re W + i ∂L/∂Im W and A = G Wᴴ − W Gᴴ (skew-Hermitian):
    W ← (I + λ/2 A)⁻¹ (I − λ/2 A) W, λ = `manifold_lr` (the paper's eqs. 8–9; the authors' released code
    divides G by its RMSprop norm first). Outputs are [Re h, Im h].

    W starts Haar-random (`init="haar"`) or as the product of a random uRNN's factors (`"urnn_product"`, the authors'
    MNIST initialisation); V, the modReLU bias and h_0 start as `ComplexStateCell` says.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        manifold_lr: float = 1e-3,
        init: str = "haar",
        input_init: str = "normal",
        trainable_h0: bool = False,
        mod_bias_bound: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, input_init, trainable_h0, mod_bias_bound)
        check_positive("manifold_lr", manifold_lr, 1e-3)
        if init not in RECURRENT_INITS:
            raise ConfigError(f"model.init must be one of {', '.join(RECURRENT_INITS)}, got {init!r}")
        self.manifold_lr = float(manifold_lr)
        w = random_unitary(self.hidden_size) if init == "haar" else urnn_product_unitary(self.hidden_size)
        self.w_real = nn.Parameter(w.real.contiguous())
        self.w_imag = nn.Parameter(w.imag.contiguous())

    def recurrent_matrix(self) -> Tensor:
        return torch.complex(self.w_real, self.w_imag)

    def recurrent_operands(self) -> Tensor:
        return self.recurrent_matrix().t()

    def apply_recurrent(self, h: Tensor, w_t: Tensor) -> Tensor:
        return h @ w_t

    def manifold_parameters(self) -> list[nn.Parameter]:
        return [self.w_real, self.w_imag]

    def free_parameters(self) -> int:
        return super().free_parameters() - self.hidden_size**2  # U(n) has n² real dimensions, not 2n²

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        if self.w_real.grad is None:
            return
        g = torch.complex(self.w_real.grad, self.w_imag.grad)
        w = self.recurrent_matrix()
        a = g @ w.conj().t() - w @ g.conj().t()
        eye = torch.eye(self.hidden_size, dtype=w.dtype, device=w.device)
        half = self.manifold_lr / 2
        w_next = torch.linalg.solve(eye + half * a, (eye - half * a) @ w)
        self.w_real.copy_(w_next.real)
        self.w_imag.copy_(w_next.imag)
        self.w_real.grad = self.w_imag.grad = None  # the optimizer's zero_grad never sees these
