// Fused CPU kernels for the Eq. 13 quantizer (mmtrs/quant/quantizer.py), and the C++
// autograd node that runs them (mmtrs::QuantizeNode, at the end of this file).
//
// The quantizer runs on every activation of the network; written as ATen ops it makes
// ~7 passes over memory forward (scale, two compares, clamp, round, divide, sign-check
// min) and ~4 backward (divide, masked fill, dot). These kernels do one pass each way.
// They reproduce the ATen path's float32 arithmetic operation by operation, so the
// forward output and the STE mask are bit-identical to it (tested); only the order of
// the backward dot-product sum differs (float blocks of 2048, added up in double).
// The STE mask is not stored: the backward pass recomputes it from x (which it reads
// anyway for the scale gradient) with the forward's operations, which saves a byte per
// element written and read, and an allocation per call (page faults on every step).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace {

constexpr int64_t kGrain = 16384;
// Eq. 5 counts are summed in int32 over blocks this long (a 32-bit sum vectorizes with
// the 32-bit floats and cannot overflow in a block), then added up in int64.
constexpr int64_t kCountBlock = 65536;
// (v + 1.5 * 2^23) - 1.5 * 2^23 rounds v to the nearest integer, ties to even (IEEE
// default rounding), for |v| < 2^22: the same as torch.round, and it vectorizes with
// plain SSE2 where nearbyintf would be a libm call per element. |v| <= 128 here.
constexpr float kRoundMagic = 12582912.0f;

// `#pragma omp simd` lets the compiler vectorize the min / sum reductions, which plain
// -O3 may not reorder; the masks are handled as bytes and blended with bit operations,
// as gcc leaves a bool-conditioned select unvectorized.
// The integer level x_d of Eq. 13 from v = gamma * x / s: clip, then round (or sign).
template <bool kSign>
inline float level(float v, float alpha, float beta) {
  const float cl = v > beta ? beta : (v < alpha ? alpha : v);     // clip (NaN stays NaN)
  return kSign ? (cl >= 0.f ? 1.f : -1.f) : (cl + kRoundMagic) - kRoundMagic;
}

// kScaled: the output is multiplied by `f` in the same pass, (x_d / gamma) * f, the same
// two float32 operations as ATen's `x_q * f` (the de-normalization h of Eq. 3, which
// QConv2d applies to its weights; see quantize_forward).
// kLevels: the integer levels x_d are also compared with `levels` (int8, those of an
// earlier pass) and written there, and the changed ones counted: the numerator of
// Eq. 5 for weights, in the pass that quantizes them anyway (see update_levels).
template <bool kSign, bool kMin, bool kScaled, bool kLevels>
float forward_range(const float* __restrict x, float* __restrict out,
                    int8_t* __restrict levels, int64_t begin, int64_t end, float c,
                    float alpha, float beta, float gamma, float f, int64_t* changed_out) {
  float mn = std::numeric_limits<float>::infinity();
  if constexpr (!kLevels) {  // every activation: the loop without the count's blocks
#pragma omp simd reduction(min : mn)
    for (int64_t i = begin; i < end; ++i) {
      const float xi = x[i];
      const float v = xi * c;                      // x * (gamma / s)
      const float q = level<kSign>(v, alpha, beta) / gamma;   // x_q = x_d / gamma
      out[i] = kScaled ? q * f : q;
      if (kMin) mn = xi < mn ? xi : mn;
    }
    *changed_out = 0;
    return mn;
  }
  int64_t total = 0;
  for (int64_t blk = begin; blk < end; blk += kCountBlock) {
    const int64_t stop = end - blk > kCountBlock ? blk + kCountBlock : end;
    int32_t changed = 0;  // per block: see kCountBlock
#pragma omp simd reduction(min : mn) reduction(+ : changed)
    for (int64_t i = blk; i < stop; ++i) {
      const float xi = x[i];
      const float v = xi * c;                      // x * (gamma / s)
      const float lv = level<kSign>(v, alpha, beta);
      const float q = lv / gamma;                  // x_q = x_d / gamma
      out[i] = kScaled ? q * f : q;
      if (kMin) mn = xi < mn ? xi : mn;
      const int32_t li = static_cast<int32_t>(lv);
      changed += li != levels[i];
      levels[i] = static_cast<int8_t>(li);
    }
    total += changed;
  }
  *changed_out = total;
  return mn;
}

// The STE mask of Eq. 13, taken before rounding: 1 where v = x * (gamma / s) lies
// outside [alpha, beta] (NaN: inside, as the ATen path's compares give).
inline uint8_t outside_range(float v, float alpha, float beta) {
  return static_cast<uint8_t>(v > beta) | static_cast<uint8_t>(v < alpha);
}

// q where the mask byte is 0, +0.0f where it is 1 (masked_fill(outside, 0))
inline float unless_outside(float q, uint8_t outside) {
  uint32_t bits;
  std::memcpy(&bits, &q, sizeof bits);
  bits &= static_cast<uint32_t>(outside) - 1u;
  std::memcpy(&q, &bits, sizeof bits);
  return q;
}

struct MinCount {
  float mn;
  int64_t changed;
};

template <bool kSign, bool kMin, bool kScaled, bool kLevels>
MinCount forward_all(const float* x, float* out, int8_t* levels, int64_t n, float c,
                     float alpha, float beta, float gamma, float f) {
  return at::parallel_reduce(
      0, n, kGrain, MinCount{std::numeric_limits<float>::infinity(), 0},
      [&](int64_t b, int64_t e, MinCount ident) {
        int64_t changed = 0;
        const float m = forward_range<kSign, kMin, kScaled, kLevels>(
            x, out, levels, b, e, c, alpha, beta, gamma, f, &changed);
        return MinCount{m < ident.mn ? m : ident.mn, ident.changed + changed};
      },
      [](MinCount a, MinCount b) {
        return MinCount{a.mn < b.mn ? a.mn : b.mn, a.changed + b.changed};
      });
}

void check_input(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
}

}  // namespace

// Returns (x_q [* out_scale], min(x) or +inf if not asked, number of changed levels or
// -1). c = gamma / s computed by the caller exactly as the ATen path does (float32
// reciprocal(s) * gamma). out_scale: multiply the output by this float32 value in the
// same pass (None: no multiplication). levels: an int8 tensor of x's size holding the
// levels of an earlier x; they are compared with x's and replaced by them (None: no
// counting).
std::tuple<at::Tensor, double, int64_t> quantize_forward(
    const at::Tensor& x_in, double c, double alpha, double beta, double gamma,
    bool use_sign, bool want_min, std::optional<double> out_scale,
    const std::optional<at::Tensor>& levels) {
  check_input(x_in, "x");
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty_like(x);
  const float* xp = x.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t n = x.numel();
  int8_t* lp = nullptr;
  if (levels.has_value()) {
    TORCH_CHECK(levels->scalar_type() == at::kChar && levels->is_contiguous() &&
                    levels->numel() == n && levels->device().is_cpu(),
                "levels must be a contiguous int8 CPU tensor of x's size");
    lp = levels->data_ptr<int8_t>();
  }
  const float cf = static_cast<float>(c), af = static_cast<float>(alpha),
              bf = static_cast<float>(beta), gf = static_cast<float>(gamma),
              ff = static_cast<float>(out_scale.value_or(1.0));
  MinCount r;
#define MMTRS_FWD(S, M, F, L) \
  r = forward_all<S, M, F, L>(xp, op, lp, n, cf, af, bf, gf, ff)
#define MMTRS_FWD_L(S, M, F) \
  if (lp) MMTRS_FWD(S, M, F, true); else MMTRS_FWD(S, M, F, false)
#define MMTRS_FWD_F(S, M) \
  if (out_scale.has_value()) { MMTRS_FWD_L(S, M, true); } else { MMTRS_FWD_L(S, M, false); }
#define MMTRS_FWD_M(S) if (want_min) { MMTRS_FWD_F(S, true); } else { MMTRS_FWD_F(S, false); }
  if (use_sign) {
    MMTRS_FWD_M(true)
  } else {
    MMTRS_FWD_M(false)
  }
#undef MMTRS_FWD_M
#undef MMTRS_FWD_F
#undef MMTRS_FWD_L
#undef MMTRS_FWD
  return {out, static_cast<double>(r.mn), lp ? r.changed : -1};
}

namespace {

// One block of the backward: grad_x = grad / s inside the clipping range, and the
// partial sum of grad_x * x. A function of its own with restrict pointers: written
// inline in the reduction lambda, gcc vectorized it with per-iteration alias checks
// and ran it at less than half the speed of the scaled backward, which does more.
float backward_block(const float* __restrict gp, const float* __restrict xp,
                     float* __restrict gxp, int64_t b, int64_t e, float sf, float c,
                     float alpha, float beta) {
  float part = 0.f;
#pragma omp simd reduction(+ : part)
  for (int64_t i = b; i < e; ++i) {
    const float xi = xp[i];
    const float g = unless_outside(gp[i] / sf, outside_range(xi * c, alpha, beta));
    gxp[i] = g;
    part += g * xi;
  }
  return part;
}

}  // namespace

// Returns (grad_x, dot(grad_x, x)). grad_x = grad / s inside the clipping range, 0 outside
// (STE, the mask recomputed from x with c = gamma / s as in the forward pass); the dot
// gives the LSQ scale gradient, skipped (0) unless asked.
std::tuple<at::Tensor, double> quantize_backward(
    const at::Tensor& grad_in, const at::Tensor& x_in, double s, double c, double alpha,
    double beta, bool want_dot) {
  check_input(grad_in, "grad");
  check_input(x_in, "x");
  TORCH_CHECK(grad_in.numel() == x_in.numel(), "grad and x sizes differ");
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous();
  at::Tensor grad_x = at::empty_like(x);
  const float* gp = grad.const_data_ptr<float>();
  const float* xp = x.const_data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float sf = static_cast<float>(s), cf = static_cast<float>(c),
              af = static_cast<float>(alpha), bf = static_cast<float>(beta);
  const int64_t n = x.numel();
  if (!want_dot) {
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i)
        gxp[i] = unless_outside(gp[i] / sf, outside_range(xp[i] * cf, af, bf));
    });
    return {grad_x, 0.0};
  }
  const double dot = at::parallel_reduce(
      0, n, kGrain, 0.0,
      [&](int64_t b, int64_t e, double ident) {
        // float partial sums over blocks of 2048 (vectorized), added up in double:
        // accurate over millions of elements
        for (int64_t blk = b; blk < e; blk += 2048)
          ident += backward_block(gp, xp, gxp, blk, e - blk > 2048 ? blk + 2048 : e, sf,
                                  cf, af, bf);
        return ident;
      },
      [](double a, double b) { return a + b; });
  return {grad_x, dot};
}

namespace {

// One block of the scaled backward: grad_x = (grad * f) / s inside the clipping range
// (MulBackward of x_q * f, then the STE of Eq. 13, the ATen path's operations), with
// partial sums of grad_x * x (LSQ scale gradient) and grad * x_q (gradient of f), x_q
// recomputed from x as in the forward pass instead of being kept.
template <bool kSign>
void scaled_backward_block(const float* __restrict gp, const float* __restrict xp,
                           float* __restrict gxp, int64_t b, int64_t e, float sf, float f,
                           float c, float alpha, float beta, float gamma, float& dot,
                           float& dot_f) {
  float part = 0.f, part_f = 0.f;
#pragma omp simd reduction(+ : part, part_f)
  for (int64_t i = b; i < e; ++i) {
    const float gi = gp[i], xi = xp[i];
    const float v = xi * c;
    const float g = unless_outside((gi * f) / sf, outside_range(v, alpha, beta));
    gxp[i] = g;
    part += g * xi;
    part_f += gi * (level<kSign>(v, alpha, beta) / gamma);
  }
  dot = part;
  dot_f = part_f;
}

}  // namespace

// The backward of quantize_forward with out_scale f: returns (grad_x, dot(grad_x, x),
// sum(grad * x_q)); the last is d loss / d f. Sums as in quantize_backward (float blocks
// of 2048 added up in double).
std::tuple<at::Tensor, double, double> quantize_backward_scaled(
    const at::Tensor& grad_in, const at::Tensor& x_in, double s, double out_scale,
    double c, double alpha, double beta, double gamma, bool use_sign) {
  check_input(grad_in, "grad");
  check_input(x_in, "x");
  TORCH_CHECK(grad_in.numel() == x_in.numel(), "grad and x sizes differ");
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous();
  at::Tensor grad_x = at::empty_like(x);
  const float* gp = grad.const_data_ptr<float>();
  const float* xp = x.const_data_ptr<float>();
  float* gxp = grad_x.data_ptr<float>();
  const float sf = static_cast<float>(s), ff = static_cast<float>(out_scale),
              cf = static_cast<float>(c), af = static_cast<float>(alpha),
              bf = static_cast<float>(beta), gf = static_cast<float>(gamma);
  using Pair = std::pair<double, double>;
  const Pair sums = at::parallel_reduce(
      0, x.numel(), kGrain, Pair(0.0, 0.0),
      [&](int64_t b, int64_t e, Pair ident) {
        for (int64_t blk = b; blk < e; blk += 2048) {
          const int64_t stop = e - blk > 2048 ? blk + 2048 : e;
          float dot, dot_f;
          if (use_sign)
            scaled_backward_block<true>(gp, xp, gxp, blk, stop, sf, ff, cf, af, bf,
                                        gf, dot, dot_f);
          else
            scaled_backward_block<false>(gp, xp, gxp, blk, stop, sf, ff, cf, af, bf,
                                         gf, dot, dot_f);
          ident.first += dot;
          ident.second += dot_f;
        }
        return ident;
      },
      [](Pair a, Pair b) { return Pair(a.first + b.first, a.second + b.second); });
  return {grad_x, sums.first, sums.second};
}

namespace {

template <bool kSign>
int64_t update_levels_range(const float* __restrict w, int8_t* __restrict levels,
                            int64_t begin, int64_t end, float c, float alpha, float beta) {
  int64_t total = 0;
  for (int64_t blk = begin; blk < end; blk += kCountBlock) {
    const int64_t stop = end - blk > kCountBlock ? blk + kCountBlock : end;
    int32_t changed = 0;  // per block: see kCountBlock
#pragma omp simd reduction(+ : changed)
    for (int64_t i = blk; i < stop; ++i) {
      const int32_t lv = static_cast<int32_t>(level<kSign>(w[i] * c, alpha, beta));
      changed += lv != levels[i];
      levels[i] = static_cast<int8_t>(lv);
    }
    total += changed;
  }
  return total;
}

}  // namespace

// TR bookkeeping (Eq. 5): the integer levels of w written into `levels` (int8, updated in
// place) and the number of them that changed, in one pass over the weights. Levels are
// those of the forward kernel (same arithmetic), before the division by gamma.
int64_t update_levels(const at::Tensor& w_in, double c, double alpha, double beta,
                      bool use_sign, at::Tensor& levels) {
  check_input(w_in, "w");
  TORCH_CHECK(levels.scalar_type() == at::kChar && levels.is_contiguous() &&
                  levels.numel() == w_in.numel(),
              "levels must be a contiguous int8 tensor of w's size");
  const at::Tensor w = w_in.contiguous();
  const float* wp = w.const_data_ptr<float>();
  int8_t* lp = levels.data_ptr<int8_t>();
  const float cf = static_cast<float>(c), af = static_cast<float>(alpha),
              bf = static_cast<float>(beta);
  return at::parallel_reduce(
      0, w.numel(), kGrain, int64_t(0),
      [&](int64_t b, int64_t e, int64_t ident) {
        return ident + (use_sign ? update_levels_range<true>(wp, lp, b, e, cf, af, bf)
                                 : update_levels_range<false>(wp, lp, b, e, cf, af, bf));
      },
      [](int64_t a, int64_t b) { return a + b; });
}

// A named namespace: the autograd graph and profiler show the node as
// torch::autograd::CppNode<mmtrs::QuantizeNode>.
namespace mmtrs {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The factors of the output scale f = t_0' * t_1' * ... (the de-normalization h of
// Eq. 3): each t_i' = t_i, or the float32 value of LSQ's grad-scale form of it,
// (t - t * g) + t * g, which is not always exactly t. Every operation in float32, as
// ATen's 0-d float32 ops compute it (setup.py builds this file with -ffp-contract=off:
// no fused multiply-add may round t - t * g once instead of twice).
float lsq_term(float t, std::optional<double> g) {
  if (!g.has_value()) return t;
  const float tg = t * static_cast<float>(*g);
  return (t - tg) + tg;
}

// One autograd node for the Eq. 13 quantizer on float32 CPU tensors: the forward and
// backward kernels above, plus the host-side scalar work around them (gamma / s, the
// product f and its gradients), with no Python on either pass. Every value equals the
// ATen path's (mmtrs/quant/quantizer.py, _QuantizeFn) bit for bit except the float
// order of the backward's dot products (see quantize_backward).
//
// Inputs: x, the scale s (0-d), the factors h of f (0-d tensors; one may be s itself,
// autograd then adds its two gradients), and the scalar settings of the quantizer.
// Outputs: x_q * f, min(x) (+inf unless want_min; not differentiable), which the
// caller checks for the sign of unsigned activations, and, given `levels`, the number
// of levels that differ from them (not differentiable; see quantize_forward).
class QuantizeNode : public torch::autograd::Function<QuantizeNode> {
 public:
  // forward's arguments after x, s and h: alpha, beta, gamma, use_sign, grad_factor,
  // want_min, h_scales, levels (backward returns an undefined gradient for each)
  static constexpr size_t kScalarArgs = 8;

  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               const at::Tensor& s, at::TensorList h, double alpha,
                               double beta, double gamma, bool use_sign,
                               double grad_factor, bool want_min,
                               std::vector<std::optional<double>> h_scales,
                               const std::optional<at::Tensor>& levels) {
    TORCH_CHECK(h.size() == h_scales.size(), "one LSQ gradient scale per factor of f");
    const float s_value = s.item<float>();
    const float c = (1.0f / s_value) * static_cast<float>(gamma);  // gamma / s
    std::vector<double> terms, prefix;  // float32 values, kept as doubles
    std::optional<double> f;
    for (size_t i = 0; i < h.size(); ++i) {
      const float t = lsq_term(h[i].is_same(s) ? s_value : h[i].item<float>(),
                               h_scales[i]);
      terms.push_back(t);
      prefix.push_back(i ? static_cast<float>(prefix.back()) * t : t);
    }
    if (!prefix.empty()) f = prefix.back();
    auto [out, x_min, changed] =
        quantize_forward(x, c, alpha, beta, gamma, use_sign, want_min, f, levels);
    at::Tensor min_out = at::scalar_tensor(x_min, at::kDouble);
    // the count is a third output only when asked for: an activation quantizer pays
    // for no extra tensor
    at::Tensor changed_out;
    if (levels.has_value()) {
      changed_out = at::scalar_tensor(changed, at::kLong);
      ctx->mark_non_differentiable({min_out, changed_out});
    } else {
      ctx->mark_non_differentiable({min_out});
    }
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x, s});
    auto& d = ctx->saved_data;
    d["s"] = static_cast<double>(s_value);
    d["c"] = static_cast<double>(c);
    d["range"] = std::vector<double>{alpha, beta, gamma};
    d["use_sign"] = use_sign;
    d["grad_factor"] = grad_factor;
    d["terms"] = terms;
    d["prefix"] = prefix;
    std::vector<double> scales;  // NaN: no gradient scale
    for (const auto& g : h_scales)
      scales.push_back(g.value_or(std::numeric_limits<double>::quiet_NaN()));
    d["scales"] = scales;
    if (changed_out.defined()) return {out, min_out, changed_out};
    return {out, min_out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto& d = ctx->saved_data;
    const std::vector<double> terms = d["terms"].toDoubleVector();
    const size_t n_h = terms.size();
    variable_list out(2 + n_h + kScalarArgs);  // x, s, the factors, the settings
    at::Tensor grad = grads[0];
    if (!grad.defined()) return out;
    if (grad.scalar_type() != at::kFloat) grad = grad.to(at::kFloat);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &s = saved[1];
    const double s_value = d["s"].toDouble(), c = d["c"].toDouble();
    const std::vector<double> range = d["range"].toDoubleVector();
    const bool want_s = ctx->needs_input_grad(1);
    at::Tensor grad_x;
    double dot = 0.0;
    if (n_h == 0) {
      std::tie(grad_x, dot) =
          quantize_backward(grad, x, s_value, c, range[0], range[1], want_s);
    } else {
      const std::vector<double> prefix = d["prefix"].toDoubleVector();
      const std::vector<double> scales = d["scales"].toDoubleVector();
      double dot_f;
      std::tie(grad_x, dot, dot_f) = quantize_backward_scaled(
          grad, x, s_value, prefix.back(), c, range[0], range[1], range[2],
          d["use_sign"].toBool());
      // gradients of f = ((t0 * t1) * t2) ... w.r.t. each factor's tensor, as
      // autograd's MulBackward nodes form them in float32: d f / d t_k = the product
      // of the others, times the factor's LSQ gradient scale
      float g = static_cast<float>(dot_f);
      for (size_t k = n_h; k-- > 0;) {
        const float gk = k ? g * static_cast<float>(prefix[k - 1]) : g;
        if (k) g = g * static_cast<float>(terms[k]);
        if (!ctx->needs_input_grad(2 + k)) continue;
        const float v = std::isnan(scales[k]) ? gk : gk * static_cast<float>(scales[k]);
        out[2 + k] = at::scalar_tensor(v, s.options());
      }
    }
    // LSQ: d/ds = -dot / s^2 * grad_factor (dot = sum_inside(grad * x) / s), in double
    if (want_s)
      out[1] = at::scalar_tensor(-dot / s_value * d["grad_factor"].toDouble(),
                                 s.options());
    if (ctx->needs_input_grad(0)) out[0] = grad_x;
    return out;
  }
};

// (x_q * f, min(x), changed levels) through QuantizeNode; see there.
std::tuple<at::Tensor, at::Tensor, int64_t> quantize(
    const at::Tensor& x, const at::Tensor& s, std::vector<at::Tensor> h, double alpha,
    double beta, double gamma, bool use_sign, double grad_factor, bool want_min,
    std::vector<std::optional<double>> h_scales, std::optional<at::Tensor> levels) {
  check_input(s, "s");
  auto outs = QuantizeNode::apply(x, s, at::TensorList(h), alpha, beta, gamma, use_sign,
                                  grad_factor, want_min, std::move(h_scales), levels);
  return {outs[0], outs[1], outs.size() > 2 ? outs[2].item<int64_t>() : -1};
}

}  // namespace mmtrs

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("quantize_forward", &quantize_forward, "Eq. 13 quantizer forward (fused, CPU)");
  m.def("quantize_backward", &quantize_backward, "Eq. 13 quantizer backward (fused, CPU)");
  m.def("quantize_backward_scaled", &quantize_backward_scaled,
        "backward of the Eq. 13 quantizer with an output scale (fused, CPU)");
  m.def("quantize", &mmtrs::quantize,
        "Eq. 13 quantizer as one autograd node (fused kernels, CPU float32)");
  m.def("update_levels", &update_levels, "Eq. 5 transitions: update int8 levels, count changes");
  // the interface version mmtrs/quant/quantizer.py expects (a stale build is not used)
  m.attr("INTERFACE") = 2;
}
