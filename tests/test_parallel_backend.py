"""Parallel-in-time backend: the associative scan, DEER and quasi-DEER against the eager scans."""

import pytest
import torch

from arnn.backends import parallel
from arnn.backends.antisymmetric_scan import antisymmetric_scan, gated_antisymmetric_scan
from arnn.backends.parallel import (
    associative_scan,
    gated_step,
    newton,
    parallel_antisymmetric,
    parallel_gated_antisymmetric,
    ungated_step,
)
from arnn.cells import AntisymmetricCell, GatedAblationCell, GatedAntisymmetricCell

CELLS = {
    "arnn": (AntisymmetricCell, ungated_step, antisymmetric_scan, parallel_antisymmetric),
    "arnn_gated": (GatedAntisymmetricCell, gated_step, gated_antisymmetric_scan, parallel_gated_antisymmetric),
}
METHODS = ["deer", "quasi"]


def _problem(cell_name, steps, batch=3, hidden=16, eps=0.01, dtype=torch.float32, seed=0):
    """(u, h0, M, ε) as the cell's forward hands them to a backend, with a nonzero h0."""
    torch.manual_seed(seed)
    cell = CELLS[cell_name][0](2, hidden, eps=eps).to(dtype)
    x = torch.randn(steps, batch, 2, dtype=dtype)
    with torch.no_grad():
        u = cell.input_proj(x).view(steps, batch, cell.gates, hidden).squeeze(2)
        return u, 0.5 * torch.randn(batch, hidden, dtype=dtype), cell.recurrent_matrix(), cell.eps


def _sequential(a, b):
    """x_t = A_t x_{t-1} + b_t from x_0 = 0, one step at a time."""
    x, out = torch.zeros_like(b[0]), []
    for a_t, b_t in zip(a, b, strict=True):
        x = a_t * x + b_t if a_t.shape == b_t.shape else (a_t @ x.unsqueeze(-1)).squeeze(-1) + b_t
        out.append(x)
    return torch.stack(out)


@pytest.mark.parametrize("steps", [1, 2, 7, 64])
@pytest.mark.parametrize("diagonal", [True, False], ids=["diagonal", "full"])
def test_associative_scan_equals_the_sequential_loop(steps, diagonal):
    torch.manual_seed(0)
    b = torch.randn(steps, 3, 4, dtype=torch.float64)
    a = torch.randn(steps, 3, 4, dtype=torch.float64) if diagonal else torch.randn(steps, 3, 4, 4).double() / 2
    products, states = associative_scan(a, b)
    torch.testing.assert_close(states, _sequential(a, b), rtol=1e-10, atol=1e-10)
    expected_product = a[0].clone()
    for a_t in a[1:]:
        expected_product = a_t * expected_product if diagonal else a_t @ expected_product
    torch.testing.assert_close(products[-1], expected_product, rtol=1e-10, atol=1e-10)
    no_products, same_states = associative_scan(a, b, products=False)
    assert no_products is None
    torch.testing.assert_close(same_states, states, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cell_name", CELLS)
def test_states_equal_the_eager_scan_within_1e_4_in_float32(cell_name, method):
    _, step, eager, _ = CELLS[cell_name]
    for steps, hidden in ((200, 8), (50, 32)):
        u, h0, m, eps = _problem(cell_name, steps, hidden=hidden)
        solution = newton(step, u, h0, m, eps, method=method)
        tol = parallel.TOL_ULPS * torch.finfo(torch.float32).eps
        assert solution.change <= tol * max(1, solution.states.abs().max()) and solution.iterations < steps
        torch.testing.assert_close(solution.states, eager(u, h0, m, eps), rtol=0, atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cell_name", CELLS)
def test_t_iterations_solve_the_recurrence_exactly_even_far_from_convergence(cell_name, method):
    # ε = 1 makes ε‖M‖T large: after 4 of the 12 iterations the later states are still off by more than 0.1.
    _, step, eager, _ = CELLS[cell_name]
    steps, early_iters = 12, 4
    u, h0, m, eps = _problem(cell_name, steps, eps=1.0, dtype=torch.float64)
    exact = eager(u, h0, m, eps)
    early = newton(step, u, h0, m, eps, method=method, max_iters=early_iters, tol=0.0)
    assert (early.states - exact).abs().max() > 0.1
    # The first k states are exact after k iterations, so T iterations suffice whatever the tolerance.
    torch.testing.assert_close(early.states[:early_iters], exact[:early_iters], rtol=0, atol=1e-12)
    solution = newton(step, u, h0, m, eps, method=method, tol=0.0)
    assert solution.iterations == steps
    torch.testing.assert_close(solution.states, exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell_name", CELLS)
def test_deer_converges_in_fewer_iterations_than_quasi_deer(cell_name):
    _, step, _, _ = CELLS[cell_name]
    u, h0, m, eps = _problem(cell_name, 200)
    deer = newton(step, u, h0, m, eps, method="deer")
    quasi = newton(step, u, h0, m, eps, method="quasi")
    assert deer.iterations < quasi.iterations


def test_tolerance_is_relative_to_the_states_so_deers_float32_rounding_floor_does_not_run_it_on_to_t():
    # The unstructured gated ablation cell grows its states to |h| ≈ 28 over 600 steps; DEER's scan of 600 matrix
    # products then leaves a rounding floor in the change near 1e-5 that an absolute 1e-5 meets only by chance
    # (after 131 iterations here), while 1e-5 · max |h| is met after 12.
    torch.manual_seed(0)
    cell = GatedAblationCell(2, 16, eps=0.05, sigma_w=2.0)
    with torch.no_grad():
        u = cell.input_proj(torch.randn(600, 2, 2)).view(600, 2, 2, 16)
        h0, m = torch.zeros(2, 16), cell.recurrent_matrix()
    solution = newton(gated_step, u, h0, m, cell.eps, method="deer")
    largest = solution.states.abs().max().item()
    assert largest > 10 and solution.iterations <= 20
    torch.testing.assert_close(
        solution.states, gated_antisymmetric_scan(u, h0, m, cell.eps), rtol=0, atol=1e-5 * largest
    )


def test_zero_and_h0_initial_guesses_reach_the_same_states():
    u, h0, m, eps = _problem("arnn", 100)
    from_h0 = newton(ungated_step, u, h0, m, eps, init="h0")
    from_zeros = newton(ungated_step, u, h0, m, eps, init="zeros")
    torch.testing.assert_close(from_h0.states, from_zeros.states, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cell_name", CELLS)
def test_gradients_equal_the_eager_scans_in_float64(cell_name, method):
    _, _, eager, parallel = CELLS[cell_name]
    u, h0, m, eps = _problem(cell_name, 60, eps=0.1, dtype=torch.float64)
    weights = torch.randn(60, 3, 16, dtype=torch.float64)  # a loss that reads every state

    def gradients(scan, **options):
        inputs = [t.clone().requires_grad_() for t in (u, h0, m)]
        (scan(*inputs, eps, **options) * weights).sum().backward()
        return [t.grad for t in inputs]

    for got, expected in zip(gradients(parallel, method=method, tol=1e-12), gradients(eager), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("option", [{"method": "newton"}, {"init": "ones"}])
def test_unknown_method_or_initial_guess_is_rejected(option):
    u, h0, m, eps = _problem("arnn", 5)
    with pytest.raises(ValueError, match=next(iter(option))):
        parallel_antisymmetric(u, h0, m, eps, **option)


@pytest.mark.parametrize("cell_name", CELLS)
def test_model_backend_parallel_gives_the_eager_outputs_and_gradients(cell_name):
    cells = {}
    for backend in ("eager", "parallel"):
        torch.manual_seed(0)
        cells[backend] = CELLS[cell_name][0](2, 8, eps=0.1, backend=backend).double()
    x = torch.randn(4, 30, 2, dtype=torch.float64)
    results = {}
    for backend, cell in cells.items():
        y, h_last = cell(x)
        (y.square().sum() + h_last.sum()).backward()
        results[backend] = (y, *(p.grad for p in cell.parameters()))
    for got, expected in zip(results["parallel"], results["eager"], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
