// The `cpp` backend: the A-RNN recurrences as compiled CPU loops (torch.ops.arnn_cpu.*).
//
// Same math and layout as antisymmetric_scan.py (u time-major, states are rows so M h is h Mᵀ), with three
// differences that make it faster than the Python loop and than nn.RNN(tanh):
// - no interpreter between the steps: each step is one ATen GEMM plus fused elementwise loops;
// - tanh p is computed as 2σ(2p) − 1: ATen's vectorized sigmoid costs a fraction of its tanh on CPU, and the
//   backward needs only s = σ(2p): ∂tanh p/∂p = 1 − (2s − 1)² = 4 s (1 − s);
// - the backward forms d_t = g_t ⊙ ∂φ/∂p and the next adjoint in one pass over the row block, so no full-size
//   temporaries are built; ∂L/∂M stays one large GEMM after the reverse loop.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

namespace {

using at::Tensor;

// Rows per task of at::parallel_for: blocks below ~32k numbers run serially (thread hand-off costs more).
int64_t grain(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)); }

void check_inputs(const Tensor& u, const Tensor& h0, const Tensor& m, int64_t gates) {
  TORCH_CHECK(u.device().is_cpu() && h0.device().is_cpu() && m.device().is_cpu(), "arnn_cpu runs on CPU tensors");
  TORCH_CHECK(u.dim() == (gates == 1 ? 3 : 4), "u must be (T, B, n) or (T, B, 2, n)");
  TORCH_CHECK(u.is_contiguous() && h0.is_contiguous(), "u and h0 must be contiguous");
  TORCH_CHECK(u.scalar_type() == h0.scalar_type() && u.scalar_type() == m.scalar_type(), "u, h0, m: one dtype");
}

// h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t); returns all h_t and s_t = σ(2 (M h_{t-1} + u_t)).
std::tuple<Tensor, Tensor> ungated_forward(const Tensor& u, const Tensor& h0, const Tensor& m, double eps) {
  check_inputs(u, h0, m, 1);
  const int64_t steps = u.size(0), batch = u.size(1), n = u.size(2);
  Tensor h_all = at::empty_like(u);
  Tensor s = at::empty_like(u);
  const Tensor m_t = m.t();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "ungated_forward", [&] {
    const auto e = static_cast<scalar_t>(eps);
    Tensor h = h0;
    for (int64_t t = 0; t < steps; ++t) {
      Tensor s_t = s[t];
      at::addmm_out(s_t, u[t], h, m_t, /*beta=*/2, /*alpha=*/2);  // 2p = 2u_t + 2 h Mᵀ
      s_t.sigmoid_();
      const scalar_t* prev = h.const_data_ptr<scalar_t>();
      const scalar_t* sig = s_t.const_data_ptr<scalar_t>();
      scalar_t* next = h_all[t].data_ptr<scalar_t>();
      at::parallel_for(0, batch, grain(n), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin * n; i < end * n; ++i) next[i] = prev[i] + e * (2 * sig[i] - 1);
      });
      h = h_all[t];
    }
  });
  return {h_all, s};
}

// z_t = σ(M h_{t-1} + u^z_t), a_t = tanh(M h_{t-1} + u^h_t), h_t = h_{t-1} + ε z_t ⊙ a_t for u (T, B, 2, n);
// returns all h_t and (z_t, σ(2 (M h_{t-1} + u^h_t))) as (T, B, 2, n).
std::tuple<Tensor, Tensor> gated_forward(const Tensor& u, const Tensor& h0, const Tensor& m, double eps) {
  check_inputs(u, h0, m, 2);
  const int64_t steps = u.size(0), batch = u.size(1), n = u.size(3);
  Tensor h_all = at::empty({steps, batch, n}, u.options());
  Tensor s = at::empty_like(u);
  Tensor mh = at::empty({batch, n}, u.options());
  const Tensor m_t = m.t();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "gated_forward", [&] {
    const auto e = static_cast<scalar_t>(eps);
    Tensor h = h0;
    for (int64_t t = 0; t < steps; ++t) {
      at::mm_out(mh, h, m_t);  // M h_{t-1}, shared by both gates
      const scalar_t* mh_p = mh.const_data_ptr<scalar_t>();
      const scalar_t* u_t = u[t].const_data_ptr<scalar_t>();
      Tensor s_t = s[t];
      scalar_t* pre = s_t.data_ptr<scalar_t>();
      at::parallel_for(0, batch, grain(n), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const scalar_t* row = mh_p + b * n;
          for (int64_t i = 0; i < n; ++i) {
            pre[(2 * b) * n + i] = row[i] + u_t[(2 * b) * n + i];
            pre[(2 * b + 1) * n + i] = 2 * (row[i] + u_t[(2 * b + 1) * n + i]);
          }
        }
      });
      s_t.sigmoid_();
      const scalar_t* prev = h.const_data_ptr<scalar_t>();
      scalar_t* next = h_all[t].data_ptr<scalar_t>();
      at::parallel_for(0, batch, grain(n), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const scalar_t* z = pre + (2 * b) * n;
          const scalar_t* sh = pre + (2 * b + 1) * n;
          for (int64_t i = 0; i < n; ++i) next[b * n + i] = prev[b * n + i] + e * z[i] * (2 * sh[i] - 1);
        }
      });
      h = h_all[t];
    }
  });
  return {h_all, s};
}

// ∂L/∂M = Σ_t d_tᵀ h_{t-1} as one GEMM over all steps.
Tensor weight_grad(const Tensor& d, const Tensor& h0, const Tensor& h_all) {
  const int64_t steps = d.size(0), n = d.size(2);
  Tensor grad_m = at::mm(d[0].t(), h0);
  if (steps > 1) {
    grad_m.addmm_(d.slice(0, 1).reshape({-1, n}).t(), h_all.slice(0, 0, steps - 1).reshape({-1, n}));
  }
  return grad_m;
}

// The reverse sweep shared by both cells: with g_t = ∂L/∂h_t and d_t = g_t ⊙ c_t (c_t = ∂φ_t/∂p_t, diagonal),
// g_{t-1} = ∂L/∂y_{t-1} + g_t + d_t M. `local(t, g, d_t, begin, end)` writes d_t (and any per-gate gradients)
// for rows [begin, end) from g = g_t. Returns ∂L/∂h_0.
template <typename scalar_t, typename Local>
Tensor reverse_sweep(const Tensor& grad_y, const Tensor& m, const Tensor& d, Local local) {
  const int64_t steps = grad_y.size(0), batch = grad_y.size(1), n = grad_y.size(2);
  Tensor g = grad_y[steps - 1].clone();
  Tensor carry = at::empty_like(g);  // ∂L/∂y_{t-1} + g_t
  for (int64_t t = steps - 1; t >= 0; --t) {
    const scalar_t* g_p = g.const_data_ptr<scalar_t>();
    scalar_t* d_t = d[t].data_ptr<scalar_t>();
    scalar_t* c_p = carry.data_ptr<scalar_t>();
    const scalar_t* y_p = t > 0 ? grad_y[t - 1].const_data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, batch, grain(n), [&](int64_t begin, int64_t end) {
      local(t, g_p, d_t, begin, end);
      for (int64_t i = begin * n; i < end * n; ++i) c_p[i] = (y_p ? y_p[i] : 0) + g_p[i];
    });
    at::addmm_out(g, carry, d[t], m);
  }
  return g;
}

// ∂L/∂u, ∂L/∂h_0, ∂L/∂M of ungated_forward from ∂L/∂h_all.
std::tuple<Tensor, Tensor, Tensor> ungated_backward(
    const Tensor& grad_y, const Tensor& h0, const Tensor& m, const Tensor& h_all, const Tensor& s, double eps) {
  Tensor grad_out = grad_y.contiguous();
  Tensor d = at::empty_like(grad_out);
  const int64_t n = grad_out.size(2);
  Tensor grad_h0;
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "ungated_backward", [&] {
    const auto e4 = static_cast<scalar_t>(4 * eps);
    grad_h0 = reverse_sweep<scalar_t>(
        grad_out, m, d, [&](int64_t t, const scalar_t* g, scalar_t* d_t, int64_t begin, int64_t end) {
          const scalar_t* sig = s[t].const_data_ptr<scalar_t>();
          for (int64_t i = begin * n; i < end * n; ++i) d_t[i] = g[i] * e4 * sig[i] * (1 - sig[i]);
        });
  });
  return {d, grad_h0, weight_grad(d, h0, h_all)};
}

// ∂L/∂u (T, B, 2, n), ∂L/∂h_0, ∂L/∂M of gated_forward from ∂L/∂h_all.
std::tuple<Tensor, Tensor, Tensor> gated_backward(
    const Tensor& grad_y, const Tensor& h0, const Tensor& m, const Tensor& h_all, const Tensor& s, double eps) {
  Tensor grad_out = grad_y.contiguous();
  Tensor d = at::empty_like(grad_out);
  Tensor grad_u = at::empty_like(s);
  const int64_t n = grad_out.size(2);
  Tensor grad_h0;
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "gated_backward", [&] {
    const auto e = static_cast<scalar_t>(eps);
    grad_h0 = reverse_sweep<scalar_t>(
        grad_out, m, d, [&](int64_t t, const scalar_t* g, scalar_t* d_t, int64_t begin, int64_t end) {
          const scalar_t* sig = s[t].const_data_ptr<scalar_t>();
          scalar_t* gu = grad_u[t].data_ptr<scalar_t>();
          for (int64_t b = begin; b < end; ++b) {
            const scalar_t* z = sig + (2 * b) * n;
            const scalar_t* sh = sig + (2 * b + 1) * n;
            for (int64_t i = 0; i < n; ++i) {
              const scalar_t a = 2 * sh[i] - 1;
              const scalar_t g_i = g[b * n + i];
              const scalar_t gz = g_i * e * a * z[i] * (1 - z[i]);  // ∂(ε z a)/∂p_z = ε a z (1 − z)
              const scalar_t gh = g_i * e * z[i] * 4 * sh[i] * (1 - sh[i]);  // ∂(ε z a)/∂p_h = ε z (1 − a²)
              gu[(2 * b) * n + i] = gz;
              gu[(2 * b + 1) * n + i] = gh;
              d_t[b * n + i] = gz + gh;
            }
          }
        });
  });
  return {grad_u, grad_h0, weight_grad(d, h0, h_all)};
}

}  // namespace

TORCH_LIBRARY(arnn_cpu, library) {
  library.def("ungated_forward(Tensor u, Tensor h0, Tensor m, float eps) -> (Tensor, Tensor)");
  library.def("gated_forward(Tensor u, Tensor h0, Tensor m, float eps) -> (Tensor, Tensor)");
  library.def(
      "ungated_backward(Tensor grad_y, Tensor h0, Tensor m, Tensor h_all, Tensor s, float eps) "
      "-> (Tensor, Tensor, Tensor)");
  library.def(
      "gated_backward(Tensor grad_y, Tensor h0, Tensor m, Tensor h_all, Tensor s, float eps) "
      "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(arnn_cpu, CPU, library) {
  library.impl("ungated_forward", &ungated_forward);
  library.impl("gated_forward", &gated_forward);
  library.impl("ungated_backward", &ungated_backward);
  library.impl("gated_backward", &gated_backward);
}
