// Fused multi-step adaptive LIF + surrogate + output dropout for CPU: one pass over [T, R] per direction.
//
// The neuron state of an element only depends on that element's own past, so each thread takes
// blocks of kBlock contiguous elements and walks them through all T steps with the state (V,
// theta, their gradients) held in small local arrays; each step is one loop over the block that
// the compiler vectorises. Compared with one torch op per step and per quantity, each input is
// read once and each output written once, and no [T, R] temporaries are made.
//
// Forward (per element, step t):   H = charge(X_t, V);  D = H - theta;  S = [D >= 0]
//   out_t = S * m_t (m_t: the dropout scale or 0, from 16-bit random words, or 1 without dropout)
//   V = H - H S + v_reset S;  theta = decay theta + gamma S
// The backward recomputes the forward of its block first (from X, V_0 and theta_0, the same code,
// so the same D_t bit for bit), keeping D_t (and H_t with a leak) in a block-sized buffer, then
// walks back with the surrogate slope g(D_t) computed where it is used. Saving X instead of the
// slopes keeps the forward to reading X and the words and writing the output.
// The arithmetic follows the torch ops of ``FusedAdaptiveLIF`` in the same order (built with
// -ffp-contract=off), so spikes, V and theta are the same bit for bit; the surrogate slope uses
// its own exp (sigmoid) and so differs from torch's in the last bit or two.
//
// Registered as torch.ops.spikenet_cpu.*; outputs are preallocated by the caller.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <vector>

namespace {

constexpr int64_t kBlock = 1024;

// exp(x) for float: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7 (relative
// error < 1e-8 before rounding), 2^n put into the exponent bits. Branch-free, so it vectorises.
inline float exp_approx(float x) {
  x = std::min(88.0f, std::max(-87.0f, x));
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float n = (x * 1.44269504088896341f + magic) - magic;
  float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// Surrogate derivatives g(D; alpha), written as in surrogates.py (same operation order).
struct SigmoidSlope {
  static inline float f(float d, float a) {
    float s = 1.0f / (1.0f + exp_approx(-(a * d)));
    return (a * s) * (1.0f - s);
  }
};
struct TriangleSlope {
  static inline float f(float d, float a) { return std::max(1.0f - a * std::abs(d), 0.0f); }
};
struct ArcTanSlope {
  static inline float f(float d, float a) { return 1.0f / (1.0f + (a * d) * d); }
};
struct SuperSpikeSlope {
  static inline float f(float d, float a) {
    float r = 1.0f / (1.0f + a * std::abs(d));
    return r * r;
  }
};

struct Consts {
  float inv_tau, keep, vr, decay, gam, alpha, scale;
  int32_t thr;
  bool leak, shift, drop;
};

Consts make_consts(double tau, double v_reset, double thresh_decay, double gamma, double alpha, bool drop,
                   int64_t drop_threshold, double drop_scale) {
  Consts c;
  c.inv_tau = static_cast<float>(1.0 / tau);
  c.keep = static_cast<float>(1.0 - 1.0 / tau);
  c.vr = static_cast<float>(v_reset);
  c.decay = static_cast<float>(thresh_decay);
  c.gam = static_cast<float>(gamma);
  c.alpha = static_cast<float>(alpha);
  c.scale = static_cast<float>(drop_scale);
  c.thr = static_cast<int32_t>(drop_threshold);
  c.leak = c.keep != 0.0f;
  c.shift = v_reset != 0.0 || tau != 1.0;
  c.drop = drop;
  return c;
}

// One step of the forward over n elements: H from X_t and V, D = H - theta, theta (and V) updated,
// D (and H) written. The same code serves the forward and the backward's recomputation, so both
// see the same D bit for bit. Templated on the charge mode and the optional work, so that every
// instance is one branch-free loop the compiler vectorises.
enum Charge { kPlain, kShift, kLeak };  // H = X | (X + v_reset) / tau | that + (1 - 1/tau) V

template <Charge C, bool UpdateV, bool WriteH>
void charge_and_fire_n(const Consts& c, const float* __restrict__ xt, float* __restrict__ v,
                       float* __restrict__ th, float* __restrict__ d, float* __restrict__ h, int64_t n) {
  const float vr = c.vr, inv_tau = c.inv_tau, keep = c.keep, decay = c.decay, gam = c.gam;  // in registers
  for (int64_t j = 0; j < n; ++j) {
    float hj;
    if (C == kLeak) {
      hj = ((xt[j] + vr) * inv_tau) + keep * v[j];
    } else if (C == kShift) {
      hj = (xt[j] + vr) * inv_tau;
    } else {
      hj = xt[j];
    }
    const float dj = hj - th[j];
    const float s = dj >= 0.0f ? 1.0f : 0.0f;
    th[j] = th[j] * decay + gam * s;
    if (UpdateV) v[j] = (hj - hj * s) + vr * s;
    d[j] = dj;
    if (WriteH) h[j] = hj;
  }
}

template <Charge C>
void charge_and_fire_mode(const Consts& c, const float* xt, float* v, float* th, float* d, float* h, int64_t n,
                          bool update_v) {
  if (update_v) {
    if (h) charge_and_fire_n<C, true, true>(c, xt, v, th, d, h, n);
    else charge_and_fire_n<C, true, false>(c, xt, v, th, d, h, n);
  } else {
    if (h) charge_and_fire_n<C, false, true>(c, xt, v, th, d, h, n);
    else charge_and_fire_n<C, false, false>(c, xt, v, th, d, h, n);
  }
}

inline void charge_and_fire(const Consts& c, const float* xt, float* v, float* th, float* d, float* h, int64_t n,
                            bool update_v) {
  if (c.leak) charge_and_fire_mode<kLeak>(c, xt, v, th, d, h, n, update_v);
  else if (c.shift) charge_and_fire_mode<kShift>(c, xt, v, th, d, h, n, update_v);
  else charge_and_fire_mode<kPlain>(c, xt, v, th, d, h, n, update_v);
}

void check_state(const at::Tensor& t, int64_t R, const char* name) {
  TORCH_CHECK(t.numel() == R && t.is_contiguous() && t.scalar_type() == at::kFloat && t.device().is_cpu(), name,
              ": expected a contiguous float32 CPU tensor of ", R, " elements");
}

void check_seq(const at::Tensor& t, int64_t T, int64_t R, const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.size(0) == T && t.size(1) == R && t.is_contiguous() &&
                  t.scalar_type() == at::kFloat && t.device().is_cpu(),
              name, ": expected a contiguous float32 CPU tensor [", T, ", ", R, "]");
}

void check_words(const at::Tensor& words, int64_t numel) {
  TORCH_CHECK(words.numel() == 0 || (words.scalar_type() == at::kShort && words.is_contiguous() &&
                                     words.numel() >= numel),
              "words: expected contiguous int16 with at least T*R elements");
}

// The x, state and words arguments every entry point takes: x [T, R], four [R] states, the words.
void check_inputs(const at::Tensor& x, std::initializer_list<std::pair<const at::Tensor*, const char*>> states,
                  const at::Tensor& words) {
  TORCH_CHECK(x.dim() == 2, "x: expected [T, R]");
  check_seq(x, x.size(0), x.size(1), "x");
  for (const auto& [t, name] : states) check_state(*t, x.size(1), name);
  check_words(words, x.numel());
}

// Elements [j0, j0 + n) of every step (n <= kBlock) forward through all T steps, starting from V_0 and theta_0
// at v0p/th0p and leaving V_T and theta_T at vlp/thlp; after each step emit(t, out) gets the n outputs
// (spikes times the dropout scale or 0). v, th and out are the caller's kBlock scratch arrays.
template <class Emit>
void forward_segment(const Consts& c, int64_t T, int64_t R, const float* xp, const float* v0p, const float* th0p,
                     const int16_t* wp, float* vlp, float* thlp, int64_t j0, int64_t n, float* v, float* th,
                     float* out, Emit&& emit) {
  const float scale = c.scale;  // locals: a load through the struct blocks vectorisation
  const int32_t thr = c.thr;
  std::memcpy(v, v0p + j0, n * sizeof(float));
  std::memcpy(th, th0p + j0, n * sizeof(float));
  for (int64_t t = 0; t < T; ++t) {
    const int64_t off = t * R + j0;
    charge_and_fire(c, xp + off, v, th, out, nullptr, n, c.leak || t == T - 1);  // out holds D here
    if (c.drop) {
      const int16_t* w = wp + off;
      for (int64_t k = 0; k < n; ++k)  // flags as 0/1 floats (no selects): vectorises; the mask is scale or 0
        out[k] = static_cast<float>(out[k] >= 0.0f) * (static_cast<float>(static_cast<int32_t>(w[k]) < thr) * scale);
    } else {
      for (int64_t k = 0; k < n; ++k) out[k] = static_cast<float>(out[k] >= 0.0f);
    }
    emit(t, static_cast<const float*>(out));
  }
  std::memcpy(vlp + j0, v, n * sizeof(float));
  std::memcpy(thlp + j0, th, n * sizeof(float));
}

}  // namespace

// x [T, R]; v0, theta0 [R]; words: int16 [>= T*R] or empty (no dropout).
// Writes out [T, R] (spikes times the dropout scale or 0) and v_last, theta_last [R].
void alif_forward(const at::Tensor& x, const at::Tensor& v0, const at::Tensor& theta0, const at::Tensor& words,
                  const at::Tensor& out, const at::Tensor& v_last, const at::Tensor& theta_last, double tau,
                  double v_reset, double thresh_decay, double gamma, int64_t drop_threshold, double drop_scale) {
  check_inputs(x, {{&v0, "v0"}, {&theta0, "theta0"}, {&v_last, "v_last"}, {&theta_last, "theta_last"}}, words);
  const int64_t T = x.size(0), R = x.size(1);
  check_seq(out, T, R, "out");
  const Consts c = make_consts(tau, v_reset, thresh_decay, gamma, 0.0, words.numel() > 0, drop_threshold, drop_scale);
  const float* xp = x.data_ptr<float>();
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  float* outp = out.data_ptr<float>();
  const int64_t blocks = (R + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    float v[kBlock], th[kBlock], o[kBlock];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kBlock, n = std::min(kBlock, R - j0);
      forward_segment(c, T, R, xp, v0.data_ptr<float>(), theta0.data_ptr<float>(), wp, v_last.data_ptr<float>(),
                      theta_last.data_ptr<float>(), j0, n, v, th, o, [&](int64_t t, const float* step) {
                        std::memcpy(outp + t * R + j0, step, n * sizeof(float));
                      });
    }
  });
}

namespace {

// The walk back over one block, after the recomputation has filled d_all (and h_all) for all steps.
// ``go_at(t, scratch)`` gives the upstream gradient of the block's n elements at step t (a pointer into
// dL/dout, or ``scratch`` filled from a pooled gradient).
template <class G, class GoAt>
void walk_back(const Consts& c, int64_t T, int64_t R, int64_t j0, int64_t n, const GoAt& go_at, const int16_t* wp,
               const float* d_all, const float* h_all, float* gv, float* gth, float* gxp, bool v_path,
               bool detach_reset) {
  const float scale = c.scale, gam = c.gam, vr = c.vr, decay = c.decay, keep = c.keep, inv_tau = c.inv_tau;
  const float alpha = c.alpha;
  const int32_t thr = c.thr;
  float gs[kBlock], scratch[kBlock];
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t off = t * R + j0;
    const float* go = go_at(t, scratch);
    const float* dt = d_all + t * kBlock;
    if (c.drop) {
      const int16_t* w = wp + off;
      for (int64_t j = 0; j < n; ++j) {
        const float m = static_cast<float>(static_cast<int32_t>(w[j]) < thr) * scale;
        gs[j] = go[j] * m + gam * gth[j];
      }
    } else {
      for (int64_t j = 0; j < n; ++j) gs[j] = go[j] + gam * gth[j];
    }
    const bool through_v = v_path && (c.leak || t == T - 1);
    if (through_v && !detach_reset) {  // reset path: dV_t/dS_t = v_reset - H_t
      const float* ht = h_all + (c.leak ? t * kBlock : 0);
      for (int64_t j = 0; j < n; ++j) gs[j] = gs[j] + gv[j] * (vr - ht[j]);
    }
    for (int64_t j = 0; j < n; ++j) {
      gs[j] = gs[j] * G::f(dt[j], alpha);
      gth[j] = gth[j] * decay - gs[j];
    }
    if (through_v) {  // dL/dH_t = surrogate part + dL/dV_t (1 - S_t); V_{t-1} gets keep * dL/dH_t
      for (int64_t j = 0; j < n; ++j) {
        const float s = dt[j] >= 0.0f ? 1.0f : 0.0f;
        gs[j] = (gs[j] + gv[j]) - gv[j] * s;
        gv[j] = gs[j] * keep;
      }
    }
    float* gx = gxp + off;
    if (inv_tau == 1.0f) {
      std::memcpy(gx, gs, n * sizeof(float));
    } else {
      for (int64_t j = 0; j < n; ++j) gx[j] = gs[j] * inv_tau;
    }
  }
}

// Elements [j0, j0 + n) of every step (n <= kBlock) back through all T steps: the forward again (D_t,
// and H_t where the reset term needs it), then the walk back; dL/dV and dL/dtheta in place at gvp, gthp.
template <class G, class GoAt>
void backward_segment(const Consts& c, int64_t T, int64_t R, const float* xp, const float* v0p, const float* th0p,
                      int64_t j0, int64_t n, const GoAt& go_at, const int16_t* wp, float* gvp, float* gthp,
                      float* gxp, bool v_path, bool detach_reset, std::vector<float>& d_all,
                      std::vector<float>& h_all) {
  const bool keep_h = v_path && !detach_reset;  // H_t enters through the reset term only
  d_all.resize(static_cast<size_t>(T * kBlock));
  h_all.resize(keep_h ? static_cast<size_t>((c.leak ? T : 1) * kBlock) : 0);
  float v[kBlock], th[kBlock], gv[kBlock], gth[kBlock];
  std::memcpy(v, v0p + j0, n * sizeof(float));
  std::memcpy(th, th0p + j0, n * sizeof(float));
  for (int64_t t = 0; t < T; ++t) {
    float* h = nullptr;
    if (keep_h && (c.leak || t == T - 1)) h = h_all.data() + (c.leak ? t * kBlock : 0);
    charge_and_fire(c, xp + t * R + j0, v, th, d_all.data() + t * kBlock, h, n, c.leak);
  }
  std::memcpy(gv, gvp + j0, n * sizeof(float));
  std::memcpy(gth, gthp + j0, n * sizeof(float));
  walk_back<G>(c, T, R, j0, n, go_at, wp, d_all.data(), keep_h ? h_all.data() : nullptr, gv, gth, gxp, v_path,
               detach_reset);
  std::memcpy(gvp + j0, gv, n * sizeof(float));
  std::memcpy(gthp + j0, gth, n * sizeof(float));
}

template <class G>
void backward_blocks(const Consts& c, int64_t T, int64_t R, const float* xp, const float* v0p, const float* th0p,
                     const float* gop, const int16_t* wp, float* gvp, float* gthp, float* gxp, bool v_path,
                     bool detach_reset) {
  const int64_t blocks = (R + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> d_all, h_all;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kBlock, n = std::min(kBlock, R - j0);
      auto go_at = [&](int64_t t, float*) { return gop + t * R + j0; };
      backward_segment<G>(c, T, R, xp, v0p, th0p, j0, n, go_at, wp, gvp, gthp, gxp, v_path, detach_reset, d_all,
                          h_all);
    }
  });
}

// The surrogate kind as a type, for ``fn(G{})``.
template <class Fn>
void with_surrogate(int64_t kind, Fn&& fn) {
  switch (kind) {
    case 0: fn(SigmoidSlope{}); break;
    case 1: fn(TriangleSlope{}); break;
    case 2: fn(ArcTanSlope{}); break;
    case 3: fn(SuperSpikeSlope{}); break;
    default: TORCH_CHECK(false, "unknown surrogate kind ", kind);
  }
}

}  // namespace

// The backward. x, v0, theta0 and words: the forward's inputs; grad_out [T, R] (upstream of out).
// g_v, g_theta [R]: in: dL/dV_T, dL/dtheta_T; out: dL/dV_0, dL/dtheta_0. Writes grad_x [T, R].
void alif_backward(const at::Tensor& x, const at::Tensor& v0, const at::Tensor& theta0, const at::Tensor& grad_out,
                   const at::Tensor& words, const at::Tensor& g_v, const at::Tensor& g_theta,
                   const at::Tensor& grad_x, double tau, double v_reset, double thresh_decay, double gamma,
                   double alpha, int64_t surrogate, bool detach_reset, bool has_grad_v, int64_t drop_threshold,
                   double drop_scale) {
  check_inputs(x, {{&v0, "v0"}, {&theta0, "theta0"}, {&g_v, "g_v"}, {&g_theta, "g_theta"}}, words);
  const int64_t T = x.size(0), R = x.size(1);
  check_seq(grad_out, T, R, "grad_out");
  check_seq(grad_x, T, R, "grad_x");
  const Consts c = make_consts(tau, v_reset, thresh_decay, gamma, alpha, words.numel() > 0, drop_threshold,
                               drop_scale);
  const bool v_path = c.leak || has_grad_v;  // is dL/dV ever non-zero?
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  with_surrogate(surrogate, [&](auto tag) {
    using G = decltype(tag);
    backward_blocks<G>(c, T, R, x.data_ptr<float>(), v0.data_ptr<float>(), theta0.data_ptr<float>(),
                       grad_out.data_ptr<float>(), wp, g_v.data_ptr<float>(), g_theta.data_ptr<float>(),
                       grad_x.data_ptr<float>(), v_path, detach_reset);
  });
}

// ---- the same neuron, fused with the next layer's input pooling ----------------------------------
// The rows of x [T, R = (n0 + n0 * size) * F] are n0 parents then each parent's ``size`` children
// (contiguous). Instead of the [T, R] output the forward writes what the next layer reads: the
// parents' outputs x_self [T, n0, F] and, per parent, the mean (or sum) of its children's outputs
// x_neigh [T, n0, F]; the backward takes their gradients. Each parent and its children are one work
// item, run row by row (F elements) through all T steps; the children's sum is accumulated over the
// rows in order, then scaled by 1 / size as torch's mean does.

namespace {

void check_pool(const at::Tensor& x, int64_t n0, int64_t size, int64_t& F) {
  TORCH_CHECK(n0 > 0 && size > 0, "pooling layout: n0 and size must be positive");
  const int64_t R = x.size(1);
  TORCH_CHECK(R % (n0 * (1 + size)) == 0, "x has ", R, " elements per step, not (n0 + n0 * size) * F");
  F = R / (n0 * (1 + size));
  TORCH_CHECK(F <= kBlock, "rows longer than ", kBlock, " elements are not supported by the pooled kernel");
  // (the caller checks the same limit: ``AdaptiveLIFNode.fire_drop_pool``)
}

}  // namespace

void alif_pool_forward(const at::Tensor& x, const at::Tensor& v0, const at::Tensor& theta0, const at::Tensor& words,
                       const at::Tensor& x_self, const at::Tensor& x_neigh, const at::Tensor& v_last,
                       const at::Tensor& theta_last, int64_t n0, int64_t size, bool mean, double tau, double v_reset,
                       double thresh_decay, double gamma, int64_t drop_threshold, double drop_scale) {
  check_inputs(x, {{&v0, "v0"}, {&theta0, "theta0"}, {&v_last, "v_last"}, {&theta_last, "theta_last"}}, words);
  const int64_t T = x.size(0), R = x.size(1);
  int64_t F = 0;
  check_pool(x, n0, size, F);
  check_seq(x_self, T, n0 * F, "x_self");
  check_seq(x_neigh, T, n0 * F, "x_neigh");
  const Consts c = make_consts(tau, v_reset, thresh_decay, gamma, 0.0, words.numel() > 0, drop_threshold, drop_scale);
  const float* xp = x.data_ptr<float>();
  const float* v0p = v0.data_ptr<float>();
  const float* th0p = theta0.data_ptr<float>();
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  float* selfp = x_self.data_ptr<float>();
  float* neighp = x_neigh.data_ptr<float>();
  float* vlp = v_last.data_ptr<float>();
  float* thlp = theta_last.data_ptr<float>();
  const float factor = mean ? 1.0f / static_cast<float>(size) : 1.0f;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kBlock / F);

  at::parallel_for(0, n0, 16, [&](int64_t p0, int64_t p1) {
    std::vector<float> acc(static_cast<size_t>(T * F));
    float v[kBlock], th[kBlock], d[kBlock];
    auto run_rows = [&](int64_t j0, int64_t n, auto&& emit) {  // n elements (whole rows) at offset j0
      forward_segment(c, T, R, xp, v0p, th0p, wp, vlp, thlp, j0, n, v, th, d, emit);
    };
    for (int64_t p = p0; p < p1; ++p) {
      run_rows(p * F, F, [&](int64_t t, const float* o) {
        std::memcpy(selfp + (t * n0 + p) * F, o, F * sizeof(float));
      });
      for (int64_t j0 = 0; j0 < size; j0 += rows_per_chunk) {  // children, a few whole rows at a time
        const int64_t rows = std::min(rows_per_chunk, size - j0);
        run_rows(n0 * F + (p * size + j0) * F, rows * F, [&](int64_t t, const float* o) {
          float* a = acc.data() + t * F;
          for (int64_t j = 0; j < rows; ++j) {  // children in order: the sum torch's mean takes
            const float* oj = o + j * F;
            if (j0 + j == 0) {
              std::memcpy(a, oj, F * sizeof(float));
            } else {
              for (int64_t f = 0; f < F; ++f) a[f] += oj[f];
            }
          }
        });
      }
      for (int64_t t = 0; t < T; ++t) {
        const float* a = acc.data() + t * F;
        float* out = neighp + (t * n0 + p) * F;
        for (int64_t f = 0; f < F; ++f) out[f] = a[f] * factor;
      }
    }
  });
}

void alif_pool_backward(const at::Tensor& x, const at::Tensor& v0, const at::Tensor& theta0, const at::Tensor& g_self,
                        const at::Tensor& g_neigh, const at::Tensor& words, const at::Tensor& g_v,
                        const at::Tensor& g_theta, const at::Tensor& grad_x, int64_t n0, int64_t size, bool mean,
                        double tau, double v_reset, double thresh_decay, double gamma, double alpha, int64_t surrogate,
                        bool detach_reset, bool has_grad_v, int64_t drop_threshold, double drop_scale) {
  check_inputs(x, {{&v0, "v0"}, {&theta0, "theta0"}, {&g_v, "g_v"}, {&g_theta, "g_theta"}}, words);
  const int64_t T = x.size(0), R = x.size(1);
  int64_t F = 0;
  check_pool(x, n0, size, F);
  check_seq(grad_x, T, R, "grad_x");
  check_seq(g_self, T, n0 * F, "g_self");
  check_seq(g_neigh, T, n0 * F, "g_neigh");
  const Consts c = make_consts(tau, v_reset, thresh_decay, gamma, alpha, words.numel() > 0, drop_threshold,
                               drop_scale);
  const bool v_path = c.leak || has_grad_v;
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  const float* xp = x.data_ptr<float>();
  const float* v0p = v0.data_ptr<float>();
  const float* th0p = theta0.data_ptr<float>();
  const float* gsp = g_self.data_ptr<float>();
  const float* gnp = g_neigh.data_ptr<float>();
  float* gvp = g_v.data_ptr<float>();
  float* gthp = g_theta.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float divisor = mean ? static_cast<float>(size) : 1.0f;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kBlock / F);
  with_surrogate(surrogate, [&](auto tag) {
    using G = decltype(tag);
    at::parallel_for(0, n0, 16, [&](int64_t p0, int64_t p1) {
      std::vector<float> d_all, h_all;
      for (int64_t p = p0; p < p1; ++p) {
        auto parent_go = [&](int64_t t, float*) { return gsp + (t * n0 + p) * F; };
        backward_segment<G>(c, T, R, xp, v0p, th0p, p * F, F, parent_go, wp, gvp, gthp, gxp, v_path, detach_reset,
                            d_all, h_all);
        for (int64_t j0 = 0; j0 < size; j0 += rows_per_chunk) {  // children, a few whole rows at a time
          const int64_t rows = std::min(rows_per_chunk, size - j0);
          auto child_go = [&](int64_t t, float* scratch) {  // each child's share of the pooled gradient
            const float* g = gnp + (t * n0 + p) * F;
            for (int64_t f = 0; f < F; ++f) scratch[f] = g[f] / divisor;
            for (int64_t j = 1; j < rows; ++j) std::memcpy(scratch + j * F, scratch, F * sizeof(float));
            return static_cast<const float*>(scratch);
          };
          backward_segment<G>(c, T, R, xp, v0p, th0p, n0 * F + (p * size + j0) * F, rows * F, child_go, wp, gvp,
                              gthp, gxp, v_path, detach_reset, d_all, h_all);
        }
      }
    });
  });
}

TORCH_LIBRARY(spikenet_cpu, m) {
  m.def("alif_forward", &alif_forward);
  m.def("alif_backward", &alif_backward);
  m.def("alif_pool_forward", &alif_pool_forward);
  m.def("alif_pool_backward", &alif_pool_backward);
}
