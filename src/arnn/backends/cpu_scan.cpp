// The `cpp` backend: the A-RNN recurrences as compiled CPU loops (torch.ops.arnn_cpu.*).
//
// Same math and layout as antisymmetric_scan.py (u time-major, states are rows so M h is h Mᵀ), with four
// differences that make it faster than the Python loop and than nn.RNN(tanh):
// - no interpreter between the steps: each step is one ATen GEMM plus fused elementwise loops;
// - tanh p is computed as 2σ(2p) − 1: ATen's vectorized sigmoid costs a fraction of its tanh on CPU, and the
//   backward needs only s = σ(2p): ∂tanh p/∂p = 1 − (2s − 1)² = 4 s (1 − s);
// - the backward forms d_t = g_t ⊙ ∂φ/∂p and the next adjoint in one pass over the row block, so no full-size
//   temporaries are built; ∂L/∂M stays one large GEMM after the reverse loop;
// - the (T, B, ·) buffers come from a small pool (`buffer`) instead of fresh allocations: glibc maps every block
//   over 32 MiB anew, and first-touching 50–100 MB costs ~20 ms per buffer, more than the arithmetic it holds.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <mutex>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

// A (T, B, ·) buffer with `options`, reusing a pooled one nobody else holds any more (its tensor and storage are
// referenced by the pool alone). On a miss the pool first drops its idle buffers, so it never keeps more than the
// buffers of the latest shapes: in a training loop that is one set, as a caching allocator would keep.
Tensor buffer(at::IntArrayRef shape, const at::TensorOptions& options) {
  static std::mutex mutex;
  static std::vector<Tensor> pool;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto idle = [](const Tensor& t) { return t.use_count() == 1 && t.storage().use_count() == 1; };
  for (const Tensor& t : pool) {
    if (idle(t) && t.sizes() == shape && t.dtype() == options.dtype()) return t.alias();
  }
  std::erase_if(pool, idle);
  pool.push_back(at::empty(shape, options));
  return pool.back().alias();
}

// Rows per task of at::parallel_for: blocks below ~32k numbers run serially (thread hand-off costs more).
int64_t grain(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)); }

void check_inputs(const Tensor& u, const Tensor& h0, const Tensor& m, int64_t gates) {
  TORCH_CHECK(u.device().is_cpu() && h0.device().is_cpu() && m.device().is_cpu(), "arnn_cpu runs on CPU tensors");
  TORCH_CHECK(u.dim() == (gates == 1 ? 3 : 4), "u must be (T, B, n) or (T, B, 2, n)");
  TORCH_CHECK(u.is_contiguous() && h0.is_contiguous(), "u and h0 must be contiguous");
  TORCH_CHECK(u.scalar_type() == h0.scalar_type() && u.scalar_type() == m.scalar_type(), "u, h0, m: one dtype");
}

// Row kernels: one batch row of n units, restrict pointers so the compiler vectorizes them.

// h_t = h_{t-1} + ε (2 s − 1), s = σ(2p): the ungated Euler step.
template <typename T>
void ungated_row(const T* __restrict__ prev, const T* __restrict__ s, T* __restrict__ next, int64_t n, T e) {
  for (int64_t i = 0; i < n; ++i) next[i] = prev[i] + e * (2 * s[i] - 1);
}

// (M h + u^z, 2 (M h + u^h)) into one row of 2n: the arguments of σ for z and for a = 2σ(2p) − 1.
template <typename T>
void gated_pre_row(const T* __restrict__ mh, const T* __restrict__ u, T* __restrict__ pre, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    pre[i] = mh[i] + u[i];
    pre[n + i] = 2 * (mh[i] + u[n + i]);
  }
}

// h_t = h_{t-1} + ε z (2 s_h − 1) from the row (z, s_h).
template <typename T>
void gated_row(const T* __restrict__ prev, const T* __restrict__ s, T* __restrict__ next, int64_t n, T e) {
  for (int64_t i = 0; i < n; ++i) next[i] = prev[i] + e * s[i] * (2 * s[n + i] - 1);
}

// d = g ⊙ 4ε s (1 − s) (= ∂L/∂p) and carry = ∂L/∂y_{t-1} + g.
template <typename T>
void ungated_adjoint_row(const T* __restrict__ g, const T* __restrict__ s, const T* __restrict__ y, T* __restrict__ d,
                         T* __restrict__ carry, int64_t n, T e) {
  for (int64_t i = 0; i < n; ++i) {
    d[i] = g[i] * 4 * e * s[i] * (1 - s[i]);
    carry[i] = y[i] + g[i];
  }
}

// ∂L/∂p_z = g ε a z (1 − z), ∂L/∂p_h = g ε z (1 − a²) with a = 2 s_h − 1, d their sum, carry = ∂L/∂y_{t-1} + g.
template <typename T>
void gated_adjoint_row(const T* __restrict__ g, const T* __restrict__ s, const T* __restrict__ y, T* __restrict__ gu,
                       T* __restrict__ d, T* __restrict__ carry, int64_t n, T e) {
  for (int64_t i = 0; i < n; ++i) {
    const T z = s[i], sh = s[n + i];
    const T gz = g[i] * e * (2 * sh - 1) * z * (1 - z);
    const T gh = g[i] * e * z * 4 * sh * (1 - sh);
    gu[i] = gz;
    gu[n + i] = gh;
    d[i] = gz + gh;
    carry[i] = y[i] + g[i];
  }
}

// h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t); returns all h_t and s_t = σ(2 (M h_{t-1} + u_t)).
std::tuple<Tensor, Tensor> ungated_forward(const Tensor& u, const Tensor& h0, const Tensor& m, double eps) {
  check_inputs(u, h0, m, 1);
  const int64_t steps = u.size(0), batch = u.size(1), n = u.size(2);
  Tensor h_all = buffer(u.sizes(), u.options());
  Tensor s = buffer(u.sizes(), u.options());
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
        ungated_row(prev + begin * n, sig + begin * n, next + begin * n, (end - begin) * n, e);
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
  Tensor h_all = buffer({steps, batch, n}, u.options());
  Tensor s = buffer(u.sizes(), u.options());
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
        for (int64_t b = begin; b < end; ++b) gated_pre_row(mh_p + b * n, u_t + 2 * b * n, pre + 2 * b * n, n);
      });
      s_t.sigmoid_();
      const scalar_t* prev = h.const_data_ptr<scalar_t>();
      scalar_t* next = h_all[t].data_ptr<scalar_t>();
      at::parallel_for(0, batch, grain(n), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) gated_row(prev + b * n, pre + 2 * b * n, next + b * n, n, e);
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

// ∂L/∂y_t as a contiguous (B, n) block (autograd may hand over an expanded or transposed ∂L/∂h_all), zeros for t < 0.
Tensor output_grad(const Tensor& grad_y, int64_t t) {
  return t >= 0 ? grad_y[t].contiguous() : at::zeros({grad_y.size(1), grad_y.size(2)}, grad_y.options());
}

// The reverse sweep shared by both cells: with g_t = ∂L/∂h_t and d_t = g_t ⊙ c_t (c_t = ∂φ_t/∂p_t, diagonal),
// g_{t-1} = ∂L/∂y_{t-1} + g_t + d_t M. `adjoint(t, g, y, carry, begin, end)` writes d_t (and any per-gate
// gradients) and carry = y + g for rows [begin, end), from g = g_t and y = ∂L/∂y_{t-1}. Returns ∂L/∂h_0.
template <typename scalar_t, typename Adjoint>
Tensor reverse_sweep(const Tensor& grad_y, const Tensor& m, const Tensor& d, Adjoint adjoint) {
  const int64_t steps = grad_y.size(0), batch = grad_y.size(1), n = grad_y.size(2);
  Tensor g = output_grad(grad_y, steps - 1).clone();
  Tensor carry = at::empty_like(g);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const Tensor y = output_grad(grad_y, t - 1);
    const scalar_t* g_p = g.const_data_ptr<scalar_t>();
    const scalar_t* y_p = y.const_data_ptr<scalar_t>();
    scalar_t* c_p = carry.data_ptr<scalar_t>();
    at::parallel_for(0, batch, grain(n), [&](int64_t begin, int64_t end) { adjoint(t, g_p, y_p, c_p, begin, end); });
    at::addmm_out(g, carry, d[t], m);
  }
  return g;
}

// ∂L/∂u, ∂L/∂h_0, ∂L/∂M of ungated_forward from ∂L/∂h_all.
std::tuple<Tensor, Tensor, Tensor> ungated_backward(
    const Tensor& grad_y, const Tensor& h0, const Tensor& m, const Tensor& h_all, const Tensor& s, double eps) {
  Tensor d = buffer(s.sizes(), s.options());
  const int64_t n = s.size(2);
  Tensor grad_h0;
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "ungated_backward", [&] {
    const auto e = static_cast<scalar_t>(eps);
    grad_h0 = reverse_sweep<scalar_t>(grad_y, m, d, [&](int64_t t, const scalar_t* g, const scalar_t* y, scalar_t* carry,
                                                        int64_t begin, int64_t end) {
      const int64_t first = begin * n, count = (end - begin) * n;
      const scalar_t* sig = s[t].const_data_ptr<scalar_t>();
      ungated_adjoint_row(g + first, sig + first, y + first, d[t].data_ptr<scalar_t>() + first, carry + first, count, e);
    });
  });
  return {d, grad_h0, weight_grad(d, h0, h_all)};
}

// ∂L/∂u (T, B, 2, n), ∂L/∂h_0, ∂L/∂M of gated_forward from ∂L/∂h_all.
std::tuple<Tensor, Tensor, Tensor> gated_backward(
    const Tensor& grad_y, const Tensor& h0, const Tensor& m, const Tensor& h_all, const Tensor& s, double eps) {
  Tensor d = buffer(h_all.sizes(), s.options());
  Tensor grad_u = buffer(s.sizes(), s.options());
  const int64_t n = s.size(3);
  Tensor grad_h0;
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "gated_backward", [&] {
    const auto e = static_cast<scalar_t>(eps);
    grad_h0 = reverse_sweep<scalar_t>(grad_y, m, d, [&](int64_t t, const scalar_t* g, const scalar_t* y, scalar_t* carry,
                                                        int64_t begin, int64_t end) {
      const scalar_t* sig = s[t].const_data_ptr<scalar_t>();
      scalar_t* gu = grad_u[t].data_ptr<scalar_t>();
      scalar_t* d_t = d[t].data_ptr<scalar_t>();
      for (int64_t b = begin; b < end; ++b) {
        gated_adjoint_row(g + b * n, sig + 2 * b * n, y + b * n, gu + 2 * b * n, d_t + b * n, carry + b * n, n, e);
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
