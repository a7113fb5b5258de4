// Fused multi-step adaptive LIF + surrogate + output dropout for CPU: one pass over [T, R] per direction.
//
// The neuron state of an element only depends on that element's own past, so each thread takes
// blocks of kBlock contiguous elements and walks them through all T steps with the state (V,
// theta, their gradients) held in small local arrays; every inner loop is a plain loop over the
// block that the compiler vectorises. Compared with one torch op per step and per quantity, each
// input is read once and each output written once, and no [T, R] temporaries are made.
//
// Forward (per element, step t):   H = charge(X_t, V);  D = H - theta;  S = [D >= 0]
//   out_t = S * m_t (m_t: the dropout scale or 0, from 16-bit random words, or 1 without dropout)
//   slope_t = surrogate'(D)  (saved for the backward)
//   V = H - H S + v_reset S;  theta = decay theta + gamma S
// The arithmetic follows the torch ops of ``FusedAdaptiveLIF`` in the same order (built with
// -ffp-contract=off), so spikes, V and theta are the same bit for bit; the surrogate slope uses
// its own exp (sigmoid) and so differs from torch's in the last bit or two.
//
// Registered as torch.ops.spikenet_cpu.*; outputs are preallocated by the caller (empty tensors
// mark the optional ones absent).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace {

constexpr int64_t kBlock = 2048;

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

template <class G>
void slopes(const float* d, float* out, int64_t n, float alpha) {
  for (int64_t j = 0; j < n; ++j) out[j] = G::f(d[j], alpha);
}

void slopes_by_kind(int64_t kind, const float* d, float* out, int64_t n, float alpha) {
  switch (kind) {
    case 0: slopes<SigmoidSlope>(d, out, n, alpha); break;
    case 1: slopes<TriangleSlope>(d, out, n, alpha); break;
    case 2: slopes<ArcTanSlope>(d, out, n, alpha); break;
    case 3: slopes<SuperSpikeSlope>(d, out, n, alpha); break;
    default: TORCH_CHECK(false, "unknown surrogate kind ", kind);
  }
}

// m = scale where the 16-bit word is below the threshold (kept), else 0.
inline void dropout_scale(const int16_t* w, float* m, int64_t n, int32_t thr, float scale) {
  for (int64_t j = 0; j < n; ++j) m[j] = (static_cast<int32_t>(w[j]) < thr) ? scale : 0.0f;
}

inline float* opt_ptr(const at::Tensor& t) { return t.numel() ? t.data_ptr<float>() : nullptr; }

void check_buffer(const at::Tensor& t, int64_t numel, const char* name) {
  TORCH_CHECK(t.numel() == 0 || (t.numel() == numel && t.is_contiguous() && t.scalar_type() == at::kFloat &&
                                 t.device().is_cpu()),
              name, ": expected an empty tensor or a contiguous float32 CPU tensor of ", numel, " elements");
}

}  // namespace

// x [T, R]; v0, theta0 [R]; words: int16 [>= T*R] or empty (no dropout).
// Writes out [T, R]; v_last, theta_last [R]; optionally slope [T, R], and spikes and H, either all
// steps ([T, R]) or the last step only ([R]); empty tensors are skipped.
void alif_forward(const at::Tensor& x, const at::Tensor& v0, const at::Tensor& theta0, const at::Tensor& words,
                  const at::Tensor& out, const at::Tensor& v_last, const at::Tensor& theta_last,
                  const at::Tensor& slope, const at::Tensor& spikes, const at::Tensor& h_seq, double tau,
                  double v_reset, double thresh_decay, double gamma, double alpha, int64_t surrogate,
                  int64_t drop_threshold, double drop_scale) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.scalar_type() == at::kFloat && x.device().is_cpu(),
              "x: expected a contiguous float32 CPU tensor [T, R]");
  const int64_t T = x.size(0), R = x.size(1);
  check_buffer(out, T * R, "out");
  TORCH_CHECK(out.numel() == T * R, "out must be allocated");
  check_buffer(slope, T * R, "slope");
  const bool all_steps = spikes.numel() == T * R;
  check_buffer(spikes, all_steps ? T * R : R, "spikes");
  check_buffer(h_seq, spikes.numel(), "h_seq");
  TORCH_CHECK(h_seq.numel() == spikes.numel(), "spikes and h_seq must have the same size");
  for (const at::Tensor* t : {&v0, &theta0, &v_last, &theta_last}) check_buffer(*t, R, "state");
  TORCH_CHECK(v0.numel() == R && theta0.numel() == R && v_last.numel() == R && theta_last.numel() == R,
              "state tensors must have R elements");
  const bool drop = words.numel() > 0;
  TORCH_CHECK(!drop || (words.scalar_type() == at::kShort && words.is_contiguous() && words.numel() >= T * R),
              "words: expected contiguous int16 with at least T*R elements");

  const float inv_tau = static_cast<float>(1.0 / tau);
  const float keep = static_cast<float>(1.0 - 1.0 / tau);
  const bool leak = keep != 0.0f;
  const bool shift = v_reset != 0.0 || tau != 1.0;
  const float vr = static_cast<float>(v_reset), decay = static_cast<float>(thresh_decay);
  const float gam = static_cast<float>(gamma), alp = static_cast<float>(alpha);
  const float scale = static_cast<float>(drop_scale);
  const int32_t thr = static_cast<int32_t>(drop_threshold);
  const float* xp = x.data_ptr<float>();
  const float* v0p = v0.data_ptr<float>();
  const float* th0p = theta0.data_ptr<float>();
  const int16_t* wp = drop ? words.data_ptr<int16_t>() : nullptr;
  float* outp = out.data_ptr<float>();
  float* vlp = v_last.data_ptr<float>();
  float* thlp = theta_last.data_ptr<float>();
  float* slp = opt_ptr(slope);
  float* spp = opt_ptr(spikes);
  float* hp = opt_ptr(h_seq);
  const int64_t blocks = (R + kBlock - 1) / kBlock;

  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    float v[kBlock], th[kBlock], h[kBlock], d[kBlock], s[kBlock], m[kBlock];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kBlock, n = std::min(kBlock, R - j0);
      std::memcpy(v, v0p + j0, n * sizeof(float));
      std::memcpy(th, th0p + j0, n * sizeof(float));
      for (int64_t t = 0; t < T; ++t) {
        const int64_t off = t * R + j0;
        const float* xt = xp + off;
        if (leak) {
          for (int64_t j = 0; j < n; ++j) h[j] = ((xt[j] + vr) * inv_tau) + keep * v[j];
        } else if (shift) {
          for (int64_t j = 0; j < n; ++j) h[j] = (xt[j] + vr) * inv_tau;
        } else {
          std::memcpy(h, xt, n * sizeof(float));
        }
        for (int64_t j = 0; j < n; ++j) {
          d[j] = h[j] - th[j];
          s[j] = d[j] >= 0.0f ? 1.0f : 0.0f;
          th[j] = th[j] * decay + gam * s[j];
        }
        if (leak || t == T - 1) {
          for (int64_t j = 0; j < n; ++j) v[j] = (h[j] - h[j] * s[j]) + vr * s[j];
        }
        if (slp) slopes_by_kind(surrogate, d, slp + off, n, alp);
        if (spp && (all_steps || t == T - 1)) {
          const int64_t soff = all_steps ? off : j0;
          std::memcpy(spp + soff, s, n * sizeof(float));
          std::memcpy(hp + soff, h, n * sizeof(float));
        }
        if (drop) {
          dropout_scale(wp + off, m, n, thr, scale);
          float* o = outp + off;
          for (int64_t j = 0; j < n; ++j) o[j] = s[j] * m[j];
        } else {
          std::memcpy(outp + off, s, n * sizeof(float));
        }
      }
      std::memcpy(vlp + j0, v, n * sizeof(float));
      std::memcpy(thlp + j0, th, n * sizeof(float));
    }
  });
}

// The walk back. grad_out [T, R] (upstream of out); slope [T, R]; words as in the forward.
// spikes/h_seq: [T, R] with leak, else the last step only ([R], needed when grad_v_last is given),
// or empty. g_v, g_theta [R]: in: dL/dV_T, dL/dtheta_T; out: dL/dV_0, dL/dtheta_0. Writes grad_x [T, R].
void alif_backward(const at::Tensor& grad_out, const at::Tensor& slope, const at::Tensor& words,
                   const at::Tensor& spikes, const at::Tensor& h_seq, const at::Tensor& g_v,
                   const at::Tensor& g_theta, const at::Tensor& grad_x, double tau, double v_reset,
                   double thresh_decay, double gamma, bool detach_reset, bool has_grad_v, int64_t drop_threshold,
                   double drop_scale) {
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.is_contiguous() && grad_out.scalar_type() == at::kFloat,
              "grad_out: expected a contiguous float32 tensor [T, R]");
  const int64_t T = grad_out.size(0), R = grad_out.size(1);
  const float inv_tau = static_cast<float>(1.0 / tau);
  const float keep = static_cast<float>(1.0 - 1.0 / tau);
  const bool leak = keep != 0.0f;
  check_buffer(slope, T * R, "slope");
  check_buffer(grad_x, T * R, "grad_x");
  TORCH_CHECK(slope.numel() == T * R && grad_x.numel() == T * R, "slope and grad_x must be allocated");
  check_buffer(g_v, R, "g_v");
  check_buffer(g_theta, R, "g_theta");
  TORCH_CHECK(g_v.numel() == R && g_theta.numel() == R, "g_v and g_theta must be allocated");
  const bool v_path = leak || has_grad_v;  // is dL/dV ever non-zero?
  const int64_t saved = leak ? T * R : R;
  if (v_path) {
    check_buffer(spikes, saved, "spikes");
    check_buffer(h_seq, saved, "h_seq");
    TORCH_CHECK(spikes.numel() == saved && h_seq.numel() == saved, "spikes and h_seq are needed for dL/dV");
  }
  const bool drop = words.numel() > 0;
  TORCH_CHECK(!drop || (words.scalar_type() == at::kShort && words.is_contiguous() && words.numel() >= T * R),
              "words: expected contiguous int16 with at least T*R elements");
  const float vr = static_cast<float>(v_reset), decay = static_cast<float>(thresh_decay);
  const float gam = static_cast<float>(gamma), scale = static_cast<float>(drop_scale);
  const int32_t thr = static_cast<int32_t>(drop_threshold);
  const float* gop = grad_out.data_ptr<float>();
  const float* slp = slope.data_ptr<float>();
  const int16_t* wp = drop ? words.data_ptr<int16_t>() : nullptr;
  const float* spp = v_path ? spikes.data_ptr<float>() : nullptr;
  const float* hp = v_path ? h_seq.data_ptr<float>() : nullptr;
  float* gvp = g_v.data_ptr<float>();
  float* gthp = g_theta.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const int64_t blocks = (R + kBlock - 1) / kBlock;

  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    float gv[kBlock], gth[kBlock], gs[kBlock], m[kBlock];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kBlock, n = std::min(kBlock, R - j0);
      std::memcpy(gv, gvp + j0, n * sizeof(float));
      std::memcpy(gth, gthp + j0, n * sizeof(float));
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t off = t * R + j0;
        const float* go = gop + off;
        if (drop) {
          dropout_scale(wp + off, m, n, thr, scale);
          for (int64_t j = 0; j < n; ++j) gs[j] = go[j] * m[j] + gam * gth[j];
        } else {
          for (int64_t j = 0; j < n; ++j) gs[j] = go[j] + gam * gth[j];
        }
        const bool through_v = v_path && (leak || t == T - 1);
        const int64_t soff = leak ? off : j0;
        if (through_v && !detach_reset) {  // reset path: dV_t/dS_t = v_reset - H_t
          const float* ht = hp + soff;
          for (int64_t j = 0; j < n; ++j) gs[j] = gs[j] + gv[j] * (vr - ht[j]);
        }
        const float* st = slp + off;
        for (int64_t j = 0; j < n; ++j) {
          gs[j] = gs[j] * st[j];
          gth[j] = gth[j] * decay - gs[j];
        }
        if (through_v) {  // dL/dH_t = surrogate part + dL/dV_t (1 - S_t); V_{t-1} gets keep * dL/dH_t
          const float* sp = spp + soff;
          for (int64_t j = 0; j < n; ++j) {
            gs[j] = (gs[j] + gv[j]) - gv[j] * sp[j];
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
      std::memcpy(gvp + j0, gv, n * sizeof(float));
      std::memcpy(gthp + j0, gth, n * sizeof(float));
    }
  });
}

TORCH_LIBRARY(spikenet_cpu, m) {
  m.def("alif_forward", &alif_forward);
  m.def("alif_backward", &alif_backward);
}
