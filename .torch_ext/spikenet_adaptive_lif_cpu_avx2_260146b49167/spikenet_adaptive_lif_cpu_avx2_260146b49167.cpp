// Multi-step spiking neuron + surrogate + output dropout for CPU: one pass over [T, R] per direction.
//
// This file is the skeleton every neuron shares; ``cpu_codegen.py`` fills in ``@@GENERATED@@`` (the
// neuron's constants, its per-step forward and backward loops for each variant, the surrogate slopes)
// and ``spikenet_adaptive_lif`` (the op namespace, torch.ops.spikenet_<neuron>), all generated from its definition in
// ``definitions.py``. Do not edit the generated copy in the extension cache; edit this file or the
// definition.
//
// The state of an element only depends on that element's own past, so each thread takes blocks of
// kBlock contiguous elements and walks them through all T steps with the states (and their adjoints)
// held in small local arrays; each step is one loop over the block that the compiler vectorises. Each
// input is read once and each output written once; no [T, R] temporaries are made.
//
// The backward recomputes the forward of its block first (from X, the initial states and the
// parameters, with the same generated code, so the same values bit for bit), saving the tape (the
// forward values the backward needs, chosen by ``program.py``) in block-sized buffers, then walks back.
// Saving X instead of a tape keeps the forward to reading X and the dropout words and writing the
// output. Built with -ffp-contract=off, the arithmetic is the torch path's operation for operation, so
// spikes and states agree with it bit for bit; ``exp`` is computed here by ``exp_approx``.
//
// Parameters are per channel: element j of a row of C channels uses parameter entry j % C; their
// gradients come back per element (summed over the steps) and are reduced over rows by the caller.
//
// Registered as torch.ops.spikenet_adaptive_lif.*; outputs are preallocated by the caller.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
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

// ---- generated from the definition of 'adaptive_lif' (spikenet/neurons/definitions.py) ----
constexpr int kStates = 2;  // v, theta
constexpr int kParams = 0;  // none

struct Consts {
  float inv_tau, keep, v_reset, thresh_decay, gamma, alpha, reset_grad;  // the neuron's constants, the surrogate's alpha, 1 (0: detach_reset)
  float scale;  // dropout: kept units are scaled by this
  int32_t thr;  // a unit is kept where its 16-bit word is below this
  bool drop;
};

Consts make_consts(c10::ArrayRef<double> v, bool drop, int64_t drop_threshold, double drop_scale) {
  TORCH_CHECK(v.size() == 7, "consts: expected 7 values (inv_tau, keep, v_reset, thresh_decay, gamma, alpha, reset_grad), got ", v.size());
  Consts c;
  c.inv_tau = static_cast<float>(v[0]);
  c.keep = static_cast<float>(v[1]);
  c.v_reset = static_cast<float>(v[2]);
  c.thresh_decay = static_cast<float>(v[3]);
  c.gamma = static_cast<float>(v[4]);
  c.alpha = static_cast<float>(v[5]);
  c.reset_grad = static_cast<float>(v[6]);
  c.scale = static_cast<float>(drop_scale);
  c.thr = static_cast<int32_t>(drop_threshold);
  c.drop = drop;
  return c;
}

struct Slope_sigmoid {
  static inline float f(const float x, const float alpha) {
    const float t0 = alpha * x;
    const float t1 = -t0;
    const float t2 = exp_approx(t1);
    const float t3 = 1.0f + t2;
    const float t4 = 1.0f / t3;
    const float t5 = alpha * t4;
    const float t6 = 1.0f - t4;
    const float t7 = t5 * t6;
    const float r = t7;
    return r;
  }
};

struct Slope_triangle {
  static inline float f(const float x, const float alpha) {
    const float t0 = std::abs(x);
    const float t1 = alpha * t0;
    const float t2 = 1.0f - t1;
    const float t3 = std::max(t2, 0.0f);
    const float r = t3;
    return r;
  }
};

struct Slope_arctan {
  static inline float f(const float x, const float alpha) {
    const float t0 = alpha * x;
    const float t1 = t0 * x;
    const float t2 = 1.0f + t1;
    const float t3 = 1.0f / t2;
    const float r = t3;
    return r;
  }
};

struct Slope_super_spike {
  static inline float f(const float x, const float alpha) {
    const float t0 = std::abs(x);
    const float t1 = alpha * t0;
    const float t2 = 1.0f + t1;
    const float t3 = 1.0f / t2;
    const float t4 = t3 * t3;
    const float r = t4;
    return r;
  }
};

struct Slope_multi_gauss {
  static inline float f(const float x, const float alpha) {
    const float t0 = x / alpha;
    const float t1 = t0 * t0;
    const float t2 = -0.5f * t1;
    const float t3 = exp_approx(t2);
    const float t4 = alpha * 2.5066282749176025f;
    const float t5 = t3 / t4;
    const float t6 = 1.149999976158142f * t5;
    const float t7 = x - alpha;
    const float t8 = 6.0f * alpha;
    const float t9 = t7 / t8;
    const float t10 = t9 * t9;
    const float t11 = -0.5f * t10;
    const float t12 = exp_approx(t11);
    const float t13 = t8 * 2.5066282749176025f;
    const float t14 = t12 / t13;
    const float t15 = 0.15000000596046448f * t14;
    const float t16 = t6 - t15;
    const float t17 = -alpha;
    const float t18 = x - t17;
    const float t19 = t18 / t8;
    const float t20 = t19 * t19;
    const float t21 = -0.5f * t20;
    const float t22 = exp_approx(t21);
    const float t23 = t22 / t13;
    const float t24 = 0.15000000596046448f * t23;
    const float t25 = t16 - t24;
    const float r = t25;
    return r;
  }
};

template <class Fn>
void with_surrogate(int64_t id, Fn&& fn) {
  switch (id) {
    case 0: fn(Slope_sigmoid{}); break;
    case 1: fn(Slope_triangle{}); break;
    case 2: fn(Slope_arctan{}); break;
    case 3: fn(Slope_super_spike{}); break;
    case 4: fn(Slope_multi_gauss{}); break;
    default: TORCH_CHECK(false, "unknown surrogate id ", id);
  }
}

// variant 0: keep == 0.0, v_reset == 0.0, inv_tau == 1.0; tape: 1 value(s) per step, 0 more at the last step
struct Variant0 {
  static constexpr int kTape = 1, kTapeLast = 0;
  template <bool Last, bool Tape>
  static inline void forward(const Consts& c, const float* __restrict__ xt, float* const* st,
                             const float* const* par, float* __restrict__ spike, float* const* tape,
                             float* const* tape_last, int64_t n) {
    const float c_gamma = c.gamma;
    const float c_thresh_decay = c.thresh_decay;
    float* __restrict__ st_v = st[0];
    float* __restrict__ st_theta = st[1];
    if constexpr (Tape) {
      float* __restrict__ ti0 = tape[0];
      if constexpr (Last) {
        for (int64_t j = 0; j < n; ++j) {
          const float t0 = xt[j] - st_theta[j];
          const float t1 = t0 >= 0.0f ? 1.0f : 0.0f;
          const float t3 = xt[j] * t1;
          const float t4 = xt[j] - t3;
          const float t5 = st_theta[j] * c_thresh_decay;
          const float t6 = c_gamma * t1;
          const float t7 = t5 + t6;
          st_v[j] = t4;
          st_theta[j] = t7;
          ti0[j] = t0;
        }
      } else {
        for (int64_t j = 0; j < n; ++j) {
          const float t0 = st_theta[j] * c_thresh_decay;
          const float t1 = xt[j] - st_theta[j];
          const float t2 = t1 >= 0.0f ? 1.0f : 0.0f;
          const float t3 = c_gamma * t2;
          const float t4 = t0 + t3;
          st_theta[j] = t4;
          ti0[j] = t1;
        }
      }
    } else if constexpr (Last) {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = xt[j] - st_theta[j];
        const float t1 = t0 >= 0.0f ? 1.0f : 0.0f;
        const float t3 = xt[j] * t1;
        const float t4 = xt[j] - t3;
        const float t5 = st_theta[j] * c_thresh_decay;
        const float t6 = c_gamma * t1;
        const float t7 = t5 + t6;
        spike[j] = t1;
        st_v[j] = t4;
        st_theta[j] = t7;
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = xt[j] - st_theta[j];
        const float t1 = t0 >= 0.0f ? 1.0f : 0.0f;
        const float t2 = st_theta[j] * c_thresh_decay;
        const float t3 = c_gamma * t1;
        const float t4 = t2 + t3;
        spike[j] = t1;
        st_theta[j] = t4;
      }
    }
  }
  template <class G, bool Last>
  static inline void backward(const Consts& c, const float* __restrict__ xt, const float* __restrict__ go,
                              float* const* gst, const float* const* par, const float* const* tape,
                              const float* const* tape_last, float* const* gpar, float* __restrict__ gx,
                              int64_t n) {
    const float c_alpha = c.alpha;
    const float c_gamma = c.gamma;
    const float c_reset_grad = c.reset_grad;
    const float c_thresh_decay = c.thresh_decay;
    float* __restrict__ gst_v = gst[0];
    float* __restrict__ gst_theta = gst[1];
    const float* __restrict__ ti0 = tape[0];
    if constexpr (Last) {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = -gst_v[j];
        const float t1 = ti0[j] >= 0.0f ? 1.0f : 0.0f;
        const float t3 = t0 * t1;
        const float t4 = gst_v[j] + t3;
        const float t5 = gst_theta[j] * c_gamma;
        const float t6 = go[j] + t5;
        const float t7 = t0 * xt[j];
        const float t8 = t7 * c_reset_grad;
        const float t9 = t6 + t8;
        const float t10 = G::f(ti0[j], c_alpha);
        const float t11 = t9 * t10;
        const float t12 = t4 + t11;
        const float t13 = gst_theta[j] * c_thresh_decay;
        const float t14 = -t11;
        const float t15 = t13 + t14;
        gx[j] = t12;
        gst_v[j] = 0.0f;
        gst_theta[j] = t15;
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = gst_theta[j] * c_gamma;
        const float t1 = go[j] + t0;
        const float t2 = G::f(ti0[j], c_alpha);
        const float t3 = t1 * t2;
        const float t4 = gst_theta[j] * c_thresh_decay;
        const float t5 = -t3;
        const float t6 = t4 + t5;
        gx[j] = t3;
        gst_theta[j] = t6;
      }
    }
  }
};

// variant 1: keep == 0.0; tape: 1 value(s) per step, 0 more at the last step
struct Variant1 {
  static constexpr int kTape = 1, kTapeLast = 0;
  template <bool Last, bool Tape>
  static inline void forward(const Consts& c, const float* __restrict__ xt, float* const* st,
                             const float* const* par, float* __restrict__ spike, float* const* tape,
                             float* const* tape_last, int64_t n) {
    const float c_gamma = c.gamma;
    const float c_inv_tau = c.inv_tau;
    const float c_thresh_decay = c.thresh_decay;
    const float c_v_reset = c.v_reset;
    float* __restrict__ st_v = st[0];
    float* __restrict__ st_theta = st[1];
    if constexpr (Tape) {
      float* __restrict__ ti0 = tape[0];
      if constexpr (Last) {
        for (int64_t j = 0; j < n; ++j) {
          const float t0 = xt[j] + c_v_reset;
          const float t1 = t0 * c_inv_tau;
          const float t2 = t1 - st_theta[j];
          const float t3 = t2 >= 0.0f ? 1.0f : 0.0f;
          const float t5 = t1 * t3;
          const float t6 = t1 - t5;
          const float t7 = c_v_reset * t3;
          const float t8 = t6 + t7;
          const float t9 = st_theta[j] * c_thresh_decay;
          const float t10 = c_gamma * t3;
          const float t11 = t9 + t10;
          st_v[j] = t8;
          st_theta[j] = t11;
          ti0[j] = t2;
        }
      } else {
        for (int64_t j = 0; j < n; ++j) {
          const float t0 = st_theta[j] * c_thresh_decay;
          const float t1 = xt[j] + c_v_reset;
          const float t2 = t1 * c_inv_tau;
          const float t3 = t2 - st_theta[j];
          const float t4 = t3 >= 0.0f ? 1.0f : 0.0f;
          const float t5 = c_gamma * t4;
          const float t6 = t0 + t5;
          st_theta[j] = t6;
          ti0[j] = t3;
        }
      }
    } else if constexpr (Last) {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = xt[j] + c_v_reset;
        const float t1 = t0 * c_inv_tau;
        const float t2 = t1 - st_theta[j];
        const float t3 = t2 >= 0.0f ? 1.0f : 0.0f;
        const float t5 = t1 * t3;
        const float t6 = t1 - t5;
        const float t7 = c_v_reset * t3;
        const float t8 = t6 + t7;
        const float t9 = st_theta[j] * c_thresh_decay;
        const float t10 = c_gamma * t3;
        const float t11 = t9 + t10;
        spike[j] = t3;
        st_v[j] = t8;
        st_theta[j] = t11;
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = xt[j] + c_v_reset;
        const float t1 = t0 * c_inv_tau;
        const float t2 = t1 - st_theta[j];
        const float t3 = t2 >= 0.0f ? 1.0f : 0.0f;
        const float t4 = st_theta[j] * c_thresh_decay;
        const float t5 = c_gamma * t3;
        const float t6 = t4 + t5;
        spike[j] = t3;
        st_theta[j] = t6;
      }
    }
  }
  template <class G, bool Last>
  static inline void backward(const Consts& c, const float* __restrict__ xt, const float* __restrict__ go,
                              float* const* gst, const float* const* par, const float* const* tape,
                              const float* const* tape_last, float* const* gpar, float* __restrict__ gx,
                              int64_t n) {
    const float c_alpha = c.alpha;
    const float c_gamma = c.gamma;
    const float c_inv_tau = c.inv_tau;
    const float c_reset_grad = c.reset_grad;
    const float c_thresh_decay = c.thresh_decay;
    const float c_v_reset = c.v_reset;
    float* __restrict__ gst_v = gst[0];
    float* __restrict__ gst_theta = gst[1];
    const float* __restrict__ ti0 = tape[0];
    if constexpr (Last) {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = -gst_v[j];
        const float t1 = ti0[j] >= 0.0f ? 1.0f : 0.0f;
        const float t3 = t0 * t1;
        const float t4 = gst_v[j] + t3;
        const float t5 = gst_theta[j] * c_gamma;
        const float t6 = go[j] + t5;
        const float t7 = gst_v[j] * c_v_reset;
        const float t8 = xt[j] + c_v_reset;
        const float t9 = t8 * c_inv_tau;
        const float t10 = t0 * t9;
        const float t11 = t7 + t10;
        const float t12 = t11 * c_reset_grad;
        const float t13 = t6 + t12;
        const float t14 = G::f(ti0[j], c_alpha);
        const float t15 = t13 * t14;
        const float t16 = t4 + t15;
        const float t17 = t16 * c_inv_tau;
        const float t18 = gst_theta[j] * c_thresh_decay;
        const float t19 = -t15;
        const float t20 = t18 + t19;
        gx[j] = t17;
        gst_v[j] = 0.0f;
        gst_theta[j] = t20;
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = gst_theta[j] * c_gamma;
        const float t1 = go[j] + t0;
        const float t2 = G::f(ti0[j], c_alpha);
        const float t3 = t1 * t2;
        const float t4 = t3 * c_inv_tau;
        const float t5 = gst_theta[j] * c_thresh_decay;
        const float t6 = -t3;
        const float t7 = t5 + t6;
        gx[j] = t4;
        gst_theta[j] = t7;
      }
    }
  }
};

// variant 2: general; tape: 2 value(s) per step, 0 more at the last step
struct Variant2 {
  static constexpr int kTape = 2, kTapeLast = 0;
  template <bool Last, bool Tape>
  static inline void forward(const Consts& c, const float* __restrict__ xt, float* const* st,
                             const float* const* par, float* __restrict__ spike, float* const* tape,
                             float* const* tape_last, int64_t n) {
    const float c_gamma = c.gamma;
    const float c_inv_tau = c.inv_tau;
    const float c_keep = c.keep;
    const float c_thresh_decay = c.thresh_decay;
    const float c_v_reset = c.v_reset;
    float* __restrict__ st_v = st[0];
    float* __restrict__ st_theta = st[1];
    if constexpr (Tape) {
      float* __restrict__ ti0 = tape[0];
      float* __restrict__ ti1 = tape[1];
      if constexpr (Last) {
        for (int64_t j = 0; j < n; ++j) {
          const float t0 = xt[j] + c_v_reset;
          const float t1 = t0 * c_inv_tau;
          const float t2 = c_keep * st_v[j];
          const float t3 = t1 + t2;
          const float t4 = t3 - st_theta[j];
          const float t5 = t4 >= 0.0f ? 1.0f : 0.0f;
          const float t7 = t3 * t5;
          const float t8 = t3 - t7;
          const float t9 = c_v_reset * t5;
          const float t10 = t8 + t9;
          const float t11 = st_theta[j] * c_thresh_decay;
          const float t12 = c_gamma * t5;
          const float t13 = t11 + t12;
          st_v[j] = t10;
          st_theta[j] = t13;
          ti0[j] = t4;
          ti1[j] = t3;
        }
      } else {
        for (int64_t j = 0; j < n; ++j) {
          const float t0 = xt[j] + c_v_reset;
          const float t1 = t0 * c_inv_tau;
          const float t2 = c_keep * st_v[j];
          const float t3 = t1 + t2;
          const float t4 = t3 - st_theta[j];
          const float t5 = t4 >= 0.0f ? 1.0f : 0.0f;
          const float t7 = t3 * t5;
          const float t8 = t3 - t7;
          const float t9 = c_v_reset * t5;
          const float t10 = t8 + t9;
          const float t11 = st_theta[j] * c_thresh_decay;
          const float t12 = c_gamma * t5;
          const float t13 = t11 + t12;
          st_v[j] = t10;
          st_theta[j] = t13;
          ti0[j] = t4;
          ti1[j] = t3;
        }
      }
    } else if constexpr (Last) {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = xt[j] + c_v_reset;
        const float t1 = t0 * c_inv_tau;
        const float t2 = c_keep * st_v[j];
        const float t3 = t1 + t2;
        const float t4 = t3 - st_theta[j];
        const float t5 = t4 >= 0.0f ? 1.0f : 0.0f;
        const float t7 = t3 * t5;
        const float t8 = t3 - t7;
        const float t9 = c_v_reset * t5;
        const float t10 = t8 + t9;
        const float t11 = st_theta[j] * c_thresh_decay;
        const float t12 = c_gamma * t5;
        const float t13 = t11 + t12;
        spike[j] = t5;
        st_v[j] = t10;
        st_theta[j] = t13;
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = xt[j] + c_v_reset;
        const float t1 = t0 * c_inv_tau;
        const float t2 = c_keep * st_v[j];
        const float t3 = t1 + t2;
        const float t4 = t3 - st_theta[j];
        const float t5 = t4 >= 0.0f ? 1.0f : 0.0f;
        const float t7 = t3 * t5;
        const float t8 = t3 - t7;
        const float t9 = c_v_reset * t5;
        const float t10 = t8 + t9;
        const float t11 = st_theta[j] * c_thresh_decay;
        const float t12 = c_gamma * t5;
        const float t13 = t11 + t12;
        spike[j] = t5;
        st_v[j] = t10;
        st_theta[j] = t13;
      }
    }
  }
  template <class G, bool Last>
  static inline void backward(const Consts& c, const float* __restrict__ xt, const float* __restrict__ go,
                              float* const* gst, const float* const* par, const float* const* tape,
                              const float* const* tape_last, float* const* gpar, float* __restrict__ gx,
                              int64_t n) {
    const float c_alpha = c.alpha;
    const float c_gamma = c.gamma;
    const float c_inv_tau = c.inv_tau;
    const float c_keep = c.keep;
    const float c_reset_grad = c.reset_grad;
    const float c_thresh_decay = c.thresh_decay;
    const float c_v_reset = c.v_reset;
    float* __restrict__ gst_v = gst[0];
    float* __restrict__ gst_theta = gst[1];
    const float* __restrict__ ti0 = tape[0];
    const float* __restrict__ ti1 = tape[1];
    if constexpr (Last) {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = -gst_v[j];
        const float t1 = ti0[j] >= 0.0f ? 1.0f : 0.0f;
        const float t3 = t0 * t1;
        const float t4 = gst_v[j] + t3;
        const float t5 = gst_theta[j] * c_gamma;
        const float t6 = go[j] + t5;
        const float t7 = gst_v[j] * c_v_reset;
        const float t8 = t0 * ti1[j];
        const float t9 = t7 + t8;
        const float t10 = t9 * c_reset_grad;
        const float t11 = t6 + t10;
        const float t12 = G::f(ti0[j], c_alpha);
        const float t13 = t11 * t12;
        const float t14 = t4 + t13;
        const float t15 = t14 * c_inv_tau;
        const float t16 = t14 * c_keep;
        const float t17 = gst_theta[j] * c_thresh_decay;
        const float t18 = -t13;
        const float t19 = t17 + t18;
        gx[j] = t15;
        gst_v[j] = t16;
        gst_theta[j] = t19;
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const float t0 = -gst_v[j];
        const float t1 = ti0[j] >= 0.0f ? 1.0f : 0.0f;
        const float t3 = t0 * t1;
        const float t4 = gst_v[j] + t3;
        const float t5 = gst_theta[j] * c_gamma;
        const float t6 = go[j] + t5;
        const float t7 = gst_v[j] * c_v_reset;
        const float t8 = t0 * ti1[j];
        const float t9 = t7 + t8;
        const float t10 = t9 * c_reset_grad;
        const float t11 = t6 + t10;
        const float t12 = G::f(ti0[j], c_alpha);
        const float t13 = t11 * t12;
        const float t14 = t4 + t13;
        const float t15 = t14 * c_inv_tau;
        const float t16 = t14 * c_keep;
        const float t17 = gst_theta[j] * c_thresh_decay;
        const float t18 = -t13;
        const float t19 = t17 + t18;
        gx[j] = t15;
        gst_v[j] = t16;
        gst_theta[j] = t19;
      }
    }
  }
};

template <class Fn>
void with_variant(int64_t id, Fn&& fn) {
  switch (id) {
    case 0: fn(Variant0{}); break;
    case 1: fn(Variant1{}); break;
    case 2: fn(Variant2{}); break;
    default: TORCH_CHECK(false, "unknown variant ", id);
  }
}
// ---- end of the part generated for 'adaptive_lif' ----

constexpr int kParamSlots = kParams > 0 ? kParams : 1;

void check_rows(const at::Tensor& t, int64_t rows, int64_t R, const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.size(0) == rows && t.size(1) == R && t.is_contiguous() &&
                  t.scalar_type() == at::kFloat && t.device().is_cpu(),
              name, ": expected a contiguous float32 CPU tensor [", rows, ", ", R, "]");
}

void check_words(const at::Tensor& words, int64_t numel) {
  TORCH_CHECK(words.numel() == 0 || (words.scalar_type() == at::kShort && words.is_contiguous() &&
                                     words.numel() >= numel),
              "words: expected contiguous int16 with at least T*R elements");
}

// kStates contiguous float32 CPU tensors of R elements each, as pointers.
template <class P>
void state_pointers(c10::ArrayRef<at::Tensor> states, int64_t R, const char* name, P* out) {
  TORCH_CHECK(static_cast<int64_t>(states.size()) == kStates, name, ": expected ", kStates, " tensors");
  for (int s = 0; s < kStates; ++s) {
    const at::Tensor& t = states[s];
    TORCH_CHECK(t.numel() == R && t.is_contiguous() && t.scalar_type() == at::kFloat && t.device().is_cpu(), name,
                "[", s, "]: expected a contiguous float32 CPU tensor of ", R, " elements");
    out[s] = t.data_ptr<float>();
  }
}

// x [T, R], params [kParams, C] (C divides R), the words.
int64_t check_inputs(const at::Tensor& x, const at::Tensor& params, const at::Tensor& words) {
  TORCH_CHECK(x.dim() == 2, "x: expected [T, R]");
  check_rows(x, x.size(0), x.size(1), "x");
  TORCH_CHECK(params.dim() == 2 && params.size(0) == kParams && params.is_contiguous() &&
                  params.scalar_type() == at::kFloat,
              "params: expected a contiguous float32 tensor [", kParams, ", C]");
  const int64_t C = params.size(1);
  TORCH_CHECK(kParams == 0 || (C > 0 && x.size(1) % C == 0), "params: C must divide the ", x.size(1),
              " elements of a step");
  check_words(words, x.numel());
  return kParams == 0 ? 1 : C;
}

// Per-thread working memory: the block's states, its parameters (entry (j0 + j) % C), the outputs of a
// step, and the tape of the recomputed forward (every step's entries, then the last step's).
struct Scratch {
  float st[kStates][kBlock];
  float par[kParamSlots][kBlock];
  float out[kBlock];
  float gin[kBlock];
  std::vector<float> tape, tape_last;
};

void load_block(const float* const* s0p, const float* pp, int64_t C, int64_t j0, int64_t n, Scratch& sc) {
  for (int s = 0; s < kStates; ++s) std::memcpy(sc.st[s], s0p[s] + j0, n * sizeof(float));
  for (int p = 0; p < kParams; ++p) {
    const float* row = pp + p * C;
    for (int64_t j = 0; j < n; ++j) sc.par[p][j] = row[(j0 + j) % C];
  }
}

using Emit = std::function<void(int64_t, const float*)>;
using GoAt = std::function<const float*(int64_t, float*)>;

// Elements [j0, j0 + n) of every step (n <= kBlock) forward through all T steps, from the initial states
// at s0p[s] to the final ones at slp[s]; after each step emit(t, out) gets the n outputs (spikes times the
// dropout scale or 0).
template <class V>
void forward_segment(const Consts& c, int64_t T, int64_t R, int64_t C, const float* xp, const float* const* s0p,
                     const float* pp, const int16_t* wp, float* const* slp, int64_t j0, int64_t n, Scratch& sc,
                     const Emit& emit) {
  const float scale = c.scale;  // locals: a load through the struct blocks vectorisation
  const int32_t thr = c.thr;
  load_block(s0p, pp, C, j0, n, sc);
  float* st[kStates];
  const float* par[kParamSlots];
  for (int s = 0; s < kStates; ++s) st[s] = sc.st[s];
  for (int p = 0; p < kParamSlots; ++p) par[p] = sc.par[p];
  float* out = sc.out;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t off = t * R + j0;
    if (t == T - 1) {
      V::template forward<true, false>(c, xp + off, st, par, out, nullptr, nullptr, n);
    } else {
      V::template forward<false, false>(c, xp + off, st, par, out, nullptr, nullptr, n);
    }
    if (c.drop) {
      const int16_t* w = wp + off;
      for (int64_t k = 0; k < n; ++k)  // flags as 0/1 floats (no selects): vectorises; the mask is scale or 0
        out[k] = out[k] * (static_cast<float>(static_cast<int32_t>(w[k]) < thr) * scale);
    }
    emit(t, static_cast<const float*>(out));
  }
  for (int s = 0; s < kStates; ++s) std::memcpy(slp[s] + j0, st[s], n * sizeof(float));
}

// Elements [j0, j0 + n) back through all T steps: the forward again (saving the tape), then the walk back.
// go_at(t, scratch) gives the upstream gradient of the block's n outputs at step t. gsp[s] ([R] each):
// in: dL/d(final states), out: dL/d(initial states); gpp [kParams, R]: out: dL/dparams per element.
template <class V, class G>
void backward_segment(const Consts& c, int64_t T, int64_t R, int64_t C, const float* xp, const float* const* s0p,
                      const float* pp, int64_t j0, int64_t n, const GoAt& go_at, const int16_t* wp,
                      float* const* gsp, float* gpp, float* gxp, Scratch& sc) {
  const float scale = c.scale;
  const int32_t thr = c.thr;
  constexpr int kTape = V::kTape > 0 ? V::kTape : 1, kTapeLast = V::kTapeLast > 0 ? V::kTapeLast : 1;
  sc.tape.resize(static_cast<size_t>(V::kTape * T * kBlock));
  sc.tape_last.resize(static_cast<size_t>(V::kTapeLast * kBlock));
  load_block(s0p, pp, C, j0, n, sc);
  float* st[kStates];
  const float* par[kParamSlots];
  for (int s = 0; s < kStates; ++s) st[s] = sc.st[s];
  for (int p = 0; p < kParamSlots; ++p) par[p] = sc.par[p];
  float* tape[kTape];
  float* tape_last[kTapeLast];
  for (int e = 0; e < V::kTapeLast; ++e) tape_last[e] = sc.tape_last.data() + e * kBlock;
  for (int64_t t = 0; t < T; ++t) {
    for (int e = 0; e < V::kTape; ++e) tape[e] = sc.tape.data() + (e * T + t) * kBlock;
    if (t == T - 1) {
      V::template forward<true, true>(c, xp + t * R + j0, st, par, nullptr, tape, tape_last, n);
    } else {
      V::template forward<false, true>(c, xp + t * R + j0, st, par, nullptr, tape, tape_last, n);
    }
  }
  // the walk back: st now holds the adjoints of the states, out the adjoint of each step's spikes
  float gpar_buf[kParamSlots][kBlock];
  float* gst[kStates];
  float* gpar[kParamSlots];
  for (int s = 0; s < kStates; ++s) {
    gst[s] = sc.st[s];
    std::memcpy(gst[s], gsp[s] + j0, n * sizeof(float));
  }
  for (int p = 0; p < kParamSlots; ++p) {
    gpar[p] = gpar_buf[p];
    std::fill(gpar[p], gpar[p] + n, 0.0f);
  }
  const float* tape_c[kTape];
  const float* tape_last_c[kTapeLast];
  for (int e = 0; e < V::kTapeLast; ++e) tape_last_c[e] = tape_last[e];
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t off = t * R + j0;
    const float* go = go_at(t, sc.gin);
    if (c.drop) {
      const int16_t* w = wp + off;
      float* g = sc.out;
      for (int64_t j = 0; j < n; ++j)
        g[j] = go[j] * (static_cast<float>(static_cast<int32_t>(w[j]) < thr) * scale);
      go = g;
    }
    for (int e = 0; e < V::kTape; ++e) tape_c[e] = sc.tape.data() + (e * T + t) * kBlock;
    if (t == T - 1) {
      V::template backward<G, true>(c, xp + off, go, gst, par, tape_c, tape_last_c, gpar, gxp + off, n);
    } else {
      V::template backward<G, false>(c, xp + off, go, gst, par, tape_c, tape_last_c, gpar, gxp + off, n);
    }
  }
  for (int s = 0; s < kStates; ++s) std::memcpy(gsp[s] + j0, gst[s], n * sizeof(float));
  for (int p = 0; p < kParams; ++p) std::memcpy(gpp + p * R + j0, gpar[p], n * sizeof(float));
}

}  // namespace

// x [T, R]; states0: kStates tensors [R]; params [kParams, C]; words: int16 [>= T*R] or empty (no dropout);
// consts: the neuron's constants, then alpha and reset_grad. Writes out [T, R] (spikes times the dropout
// scale or 0) and states_last (kStates tensors [R]).
void neuron_forward(const at::Tensor& x, c10::ArrayRef<at::Tensor> states0, const at::Tensor& params,
                    const at::Tensor& words, const at::Tensor& out, c10::ArrayRef<at::Tensor> states_last,
                    c10::ArrayRef<double> consts, int64_t variant, int64_t drop_threshold, double drop_scale) {
  const int64_t C = check_inputs(x, params, words);
  const int64_t T = x.size(0), R = x.size(1);
  check_rows(out, T, R, "out");
  const float* s0p[kStates];
  float* slp[kStates];
  state_pointers(states0, R, "states0", s0p);
  state_pointers(states_last, R, "states_last", slp);
  const Consts c = make_consts(consts, words.numel() > 0, drop_threshold, drop_scale);
  const float* xp = x.data_ptr<float>();
  const float* pp = params.data_ptr<float>();
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  float* outp = out.data_ptr<float>();
  const int64_t blocks = (R + kBlock - 1) / kBlock;
  with_variant(variant, [&](auto tag) {
    using V = decltype(tag);
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      auto sc = std::make_unique<Scratch>();
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t j0 = b * kBlock, n = std::min(kBlock, R - j0);
        forward_segment<V>(c, T, R, C, xp, s0p, pp, wp, slp, j0, n, *sc, [&](int64_t t, const float* step) {
          std::memcpy(outp + t * R + j0, step, n * sizeof(float));
        });
      }
    });
  });
}

// The backward. x, states0, params and words: the forward's inputs; grad_out [T, R] (upstream of out).
// g_states (kStates tensors [R]): in: dL/d(final states); out: dL/d(initial states). Writes grad_x [T, R]
// and g_params [kParams, R] (dL/dparams per element, summed over the steps).
void neuron_backward(const at::Tensor& x, c10::ArrayRef<at::Tensor> states0, const at::Tensor& params,
                     const at::Tensor& grad_out, const at::Tensor& words, c10::ArrayRef<at::Tensor> g_states,
                     const at::Tensor& g_params, const at::Tensor& grad_x, c10::ArrayRef<double> consts,
                     int64_t variant, int64_t surrogate, int64_t drop_threshold, double drop_scale) {
  const int64_t C = check_inputs(x, params, words);
  const int64_t T = x.size(0), R = x.size(1);
  check_rows(grad_out, T, R, "grad_out");
  check_rows(grad_x, T, R, "grad_x");
  check_rows(g_params, kParams, R, "g_params");
  const float* s0p[kStates];
  float* gsp[kStates];
  state_pointers(states0, R, "states0", s0p);
  state_pointers(g_states, R, "g_states", gsp);
  const Consts c = make_consts(consts, words.numel() > 0, drop_threshold, drop_scale);
  const float* xp = x.data_ptr<float>();
  const float* pp = params.data_ptr<float>();
  const float* gop = grad_out.data_ptr<float>();
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  float* gpp = g_params.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const int64_t blocks = (R + kBlock - 1) / kBlock;
  with_variant(variant, [&](auto vtag) {
    using V = decltype(vtag);
    with_surrogate(surrogate, [&](auto gtag) {
      using G = decltype(gtag);
      at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
        auto sc = std::make_unique<Scratch>();
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t j0 = b * kBlock, n = std::min(kBlock, R - j0);
          GoAt go_at = [&](int64_t t, float*) { return gop + t * R + j0; };
          backward_segment<V, G>(c, T, R, C, xp, s0p, pp, j0, n, go_at, wp, gsp, gpp, gxp, *sc);
        }
      });
    });
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

int64_t check_pool(const at::Tensor& x, int64_t n0, int64_t size) {
  TORCH_CHECK(n0 > 0 && size > 0, "pooling layout: n0 and size must be positive");
  const int64_t R = x.size(1);
  TORCH_CHECK(R % (n0 * (1 + size)) == 0, "x has ", R, " elements per step, not (n0 + n0 * size) * F");
  const int64_t F = R / (n0 * (1 + size));
  TORCH_CHECK(F <= kBlock, "rows longer than ", kBlock, " elements are not supported by the pooled kernel");
  // (the caller checks the same limit: ``SpikingNode.fire_drop_pool``)
  return F;
}

}  // namespace

void neuron_pool_forward(const at::Tensor& x, c10::ArrayRef<at::Tensor> states0, const at::Tensor& params,
                         const at::Tensor& words, const at::Tensor& x_self, const at::Tensor& x_neigh,
                         c10::ArrayRef<at::Tensor> states_last, int64_t n0, int64_t size, bool mean,
                         c10::ArrayRef<double> consts, int64_t variant, int64_t drop_threshold, double drop_scale) {
  const int64_t C = check_inputs(x, params, words);
  const int64_t T = x.size(0), R = x.size(1);
  const int64_t F = check_pool(x, n0, size);
  check_rows(x_self, T, n0 * F, "x_self");
  check_rows(x_neigh, T, n0 * F, "x_neigh");
  const float* s0p[kStates];
  float* slp[kStates];
  state_pointers(states0, R, "states0", s0p);
  state_pointers(states_last, R, "states_last", slp);
  const Consts c = make_consts(consts, words.numel() > 0, drop_threshold, drop_scale);
  const float* xp = x.data_ptr<float>();
  const float* pp = params.data_ptr<float>();
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  float* selfp = x_self.data_ptr<float>();
  float* neighp = x_neigh.data_ptr<float>();
  const float factor = mean ? 1.0f / static_cast<float>(size) : 1.0f;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kBlock / F);

  with_variant(variant, [&](auto tag) {
    using V = decltype(tag);
    at::parallel_for(0, n0, 16, [&](int64_t p0, int64_t p1) {
      std::vector<float> acc(static_cast<size_t>(T * F));
      auto sc = std::make_unique<Scratch>();
      for (int64_t p = p0; p < p1; ++p) {
        forward_segment<V>(c, T, R, C, xp, s0p, pp, wp, slp, p * F, F, *sc, [&](int64_t t, const float* o) {
          std::memcpy(selfp + (t * n0 + p) * F, o, F * sizeof(float));
        });
        for (int64_t j0 = 0; j0 < size; j0 += rows_per_chunk) {  // children, a few whole rows at a time
          const int64_t rows = std::min(rows_per_chunk, size - j0);
          forward_segment<V>(c, T, R, C, xp, s0p, pp, wp, slp, n0 * F + (p * size + j0) * F, rows * F, *sc,
                             [&](int64_t t, const float* o) {
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
  });
}

void neuron_pool_backward(const at::Tensor& x, c10::ArrayRef<at::Tensor> states0, const at::Tensor& params,
                          const at::Tensor& g_self, const at::Tensor& g_neigh, const at::Tensor& words,
                          c10::ArrayRef<at::Tensor> g_states, const at::Tensor& g_params, const at::Tensor& grad_x,
                          int64_t n0, int64_t size, bool mean, c10::ArrayRef<double> consts, int64_t variant,
                          int64_t surrogate, int64_t drop_threshold, double drop_scale) {
  const int64_t C = check_inputs(x, params, words);
  const int64_t T = x.size(0), R = x.size(1);
  const int64_t F = check_pool(x, n0, size);
  check_rows(grad_x, T, R, "grad_x");
  check_rows(g_self, T, n0 * F, "g_self");
  check_rows(g_neigh, T, n0 * F, "g_neigh");
  check_rows(g_params, kParams, R, "g_params");
  const float* s0p[kStates];
  float* gsp[kStates];
  state_pointers(states0, R, "states0", s0p);
  state_pointers(g_states, R, "g_states", gsp);
  const Consts c = make_consts(consts, words.numel() > 0, drop_threshold, drop_scale);
  const float* xp = x.data_ptr<float>();
  const float* pp = params.data_ptr<float>();
  const int16_t* wp = c.drop ? words.data_ptr<int16_t>() : nullptr;
  const float* gsp_self = g_self.data_ptr<float>();
  const float* gnp = g_neigh.data_ptr<float>();
  float* gpp = g_params.data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float divisor = mean ? static_cast<float>(size) : 1.0f;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kBlock / F);
  with_variant(variant, [&](auto vtag) {
    using V = decltype(vtag);
    with_surrogate(surrogate, [&](auto gtag) {
      using G = decltype(gtag);
      at::parallel_for(0, n0, 16, [&](int64_t p0, int64_t p1) {
        auto sc = std::make_unique<Scratch>();
        for (int64_t p = p0; p < p1; ++p) {
          GoAt parent_go = [&](int64_t t, float*) { return gsp_self + (t * n0 + p) * F; };
          backward_segment<V, G>(c, T, R, C, xp, s0p, pp, p * F, F, parent_go, wp, gsp, gpp, gxp, *sc);
          for (int64_t j0 = 0; j0 < size; j0 += rows_per_chunk) {  // children, a few whole rows at a time
            const int64_t rows = std::min(rows_per_chunk, size - j0);
            GoAt child_go = [&](int64_t t, float* scratch) {  // each child's share of the pooled gradient
              const float* g = gnp + (t * n0 + p) * F;
              for (int64_t f = 0; f < F; ++f) scratch[f] = g[f] / divisor;
              for (int64_t j = 1; j < rows; ++j) std::memcpy(scratch + j * F, scratch, F * sizeof(float));
              return static_cast<const float*>(scratch);
            };
            backward_segment<V, G>(c, T, R, C, xp, s0p, pp, n0 * F + (p * size + j0) * F, rows * F, child_go,
                                   wp, gsp, gpp, gxp, *sc);
          }
        }
      });
    });
  });
}

TORCH_LIBRARY(spikenet_adaptive_lif, m) {
  m.def("forward", &neuron_forward);
  m.def("backward", &neuron_backward);
  m.def("pool_forward", &neuron_pool_forward);
  m.def("pool_backward", &neuron_pool_backward);
}
