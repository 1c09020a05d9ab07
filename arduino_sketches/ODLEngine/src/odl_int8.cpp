// odl_int8.cpp - see odl_int8.h.
#include "odl_int8.h"
#include "odl_numerics.h"

#include <math.h>
#include <string.h>

#include "odl_kernels.h"

ODL_NUMERICS_BEGIN
namespace odl {

namespace {

int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / (1ll << 31));  // division truncates toward zero, as gemmlowp's
}

int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1ll << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

inline int8_t clamp8(int32_t v, int32_t lo, int32_t hi) { return (int8_t)(v < lo ? lo : (v > hi ? hi : v)); }

// y (T-K+1, Cout); W (Cout, K, Cin).
void qconv1d(const QLayerSpec& L, const int8_t* x, uint16_t T, int8_t* y) {
  const uint16_t K = L.kernel, Ci = L.in_channels, Co = L.out_channels, To = (uint16_t)(T - K + 1);
  const int32_t in_off = -L.in_zero;
  for (uint16_t t = 0; t < To; ++t)
    for (uint16_t o = 0; o < Co; ++o) {
      const int8_t* w = L.weights + (uint32_t)o * K * Ci;
      const int8_t* xr = x + (uint32_t)t * Ci;
      int32_t acc = 0;
      for (uint32_t k = 0; k < (uint32_t)K * Ci; ++k) acc += ((int32_t)xr[k] + in_off) * (int32_t)w[k];
      acc += L.bias[o];
      acc = multiply_by_quantized_multiplier(acc, L.multiplier[o], L.shift[o]) + L.out_zero;
      y[(uint32_t)t * Co + o] = clamp8(acc, L.act_min, L.act_max);
    }
}

// y (T-K+1, C); W (K, C).
void qdepthwise1d(const QLayerSpec& L, const int8_t* x, uint16_t T, int8_t* y) {
  const uint16_t K = L.kernel, C = L.in_channels, To = (uint16_t)(T - K + 1);
  const int32_t in_off = -L.in_zero;
  for (uint16_t t = 0; t < To; ++t)
    for (uint16_t c = 0; c < C; ++c) {
      int32_t acc = 0;
      for (uint16_t j = 0; j < K; ++j)
        acc += ((int32_t)x[(uint32_t)(t + j) * C + c] + in_off) * (int32_t)L.weights[(uint32_t)j * C + c];
      acc += L.bias[c];
      acc = multiply_by_quantized_multiplier(acc, L.multiplier[c], L.shift[c]) + L.out_zero;
      y[(uint32_t)t * C + c] = clamp8(acc, L.act_min, L.act_max);
    }
}

// y (out) from x (in); W (out, in).
void qdense(const QLayerSpec& L, const int8_t* x, int8_t* y) {
  const int32_t in_off = -L.in_zero;
  for (uint16_t o = 0; o < L.out_channels; ++o) {
    const int8_t* w = L.weights + (uint32_t)o * L.in_channels;
    int32_t acc = 0;
    for (uint16_t i = 0; i < L.in_channels; ++i) acc += ((int32_t)x[i] + in_off) * (int32_t)w[i];
    acc += L.bias[o];
    acc = multiply_by_quantized_multiplier(acc, L.multiplier[o], L.shift[o]) + L.out_zero;
    y[o] = clamp8(acc, L.act_min, L.act_max);
  }
}

void qmaxpool1d(const QLayerSpec& L, const int8_t* x, uint16_t T, uint16_t C, int8_t* y) {
  const uint16_t pool = L.kernel, To = (uint16_t)(T / pool);
  for (uint16_t t = 0; t < To; ++t)
    for (uint16_t c = 0; c < C; ++c) {
      int32_t m = -128;
      for (uint16_t j = 0; j < pool; ++j) {
        const int32_t v = x[((uint32_t)t * pool + j) * C + c];
        if (v > m) m = v;
      }
      y[(uint32_t)t * C + c] = clamp8(m, L.act_min, L.act_max);
    }
}

// MEAN over time, as TFLite's reference QuantizedMeanOrSum: the int32 sum minus the input zero
// point's share, times the multiplier (s_in / s_out) divided by the element count in fixed point.
void qmean1d(const QLayerSpec& L, const int8_t* x, uint16_t T, uint16_t C, int8_t* y) {
  int32_t mult = L.multiplier[0];
  int shift = L.shift[0];
  const int64_t n = T;
  int s = 63 - __builtin_clzll((uint64_t)n);
  if (s > 32) s = 32;
  if (s > 31 + shift) s = 31 + shift;
  mult = (int32_t)(((int64_t)mult << s) / n);
  shift -= s;
  for (uint16_t c = 0; c < C; ++c) {
    int32_t sum = 0;
    for (uint16_t t = 0; t < T; ++t) sum += x[(uint32_t)t * C + c];
    const int32_t v = multiply_by_quantized_multiplier(sum - L.in_zero * (int32_t)n, mult, shift) + L.out_zero;
    y[c] = clamp8(v, -128, 127);
  }
}

bool qlayer_out_shape(const QLayerSpec& L, uint16_t T, uint16_t C, uint16_t* To, uint16_t* Co) {
  switch (L.type) {
    case kConv1D:
      if (L.in_channels != C || L.kernel == 0 || L.kernel > T || !L.weights || !L.bias || !L.multiplier) return false;
      *To = (uint16_t)(T - L.kernel + 1);
      *Co = L.out_channels;
      return true;
    case kDepthwiseConv1D:
      if (L.in_channels != C || L.out_channels != C || L.kernel == 0 || L.kernel > T || !L.weights || !L.bias ||
          !L.multiplier)
        return false;
      *To = (uint16_t)(T - L.kernel + 1);
      *Co = C;
      return true;
    case kDense:
      if (T != 1 || L.in_channels != C || !L.weights || !L.bias || !L.multiplier) return false;
      *To = 1;
      *Co = L.out_channels;
      return true;
    case kMaxPool1D:
      if (L.kernel == 0 || T / L.kernel == 0) return false;
      *To = (uint16_t)(T / L.kernel);
      *Co = C;
      return true;
    case kGlobalAvgPool1D:
      if (!L.multiplier) return false;
      *To = 1;
      *Co = C;
      return true;
    default: return false;
  }
}

}  // namespace

int32_t multiply_by_quantized_multiplier(int32_t x, int32_t m, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul((int32_t)((uint32_t)x << left), m), right);
}

Status qvalidate_model(const QModelSpec& spec, uint32_t arena_bytes) {
  if (!spec.layers || spec.num_layers == 0 || spec.input_len == 0 || spec.input_channels == 0) return kErrBadModel;
  if (!(spec.input_scale > 0.0f) || !(spec.feature_scale > 0.0f)) return kErrBadModel;
  const uint32_t half = arena_bytes / 2;
  uint16_t T = spec.input_len, C = spec.input_channels;
  if ((uint32_t)T * C > half) return kErrArenaTooSmall;
  for (uint16_t l = 0; l < spec.num_layers; ++l) {
    uint16_t To = 0, Co = 0;
    if (!qlayer_out_shape(spec.layers[l], T, C, &To, &Co)) return kErrBadModel;
    if ((uint32_t)To * Co > half) return kErrArenaTooSmall;
    T = To;
    C = Co;
  }
  return T == 1 && C == spec.feature_dim ? kOk : kErrBadModel;
}

static int8_t quantize_input_value(const QModelSpec& spec, float x) {
  const float v = x / spec.input_scale;
  float r = v >= 0.0f ? floorf(v + 0.5f) : ceilf(v - 0.5f);
  r += (float)spec.input_zero;
  if (!(r > -128.0f)) r = -128.0f;  // also NaN
  if (r > 127.0f) r = 127.0f;
  return (int8_t)(int32_t)r;
}

void qquantize_input(const QModelSpec& spec, const float* x, int8_t* q) {
  const uint32_t n = (uint32_t)spec.input_len * spec.input_channels;
  for (uint32_t i = 0; i < n; ++i) q[i] = quantize_input_value(spec, x[i]);
}

void qquantize_window(const ModelSpec& fspec, const QModelSpec& spec, const float* raw, int8_t* q) {
  const uint16_t C = spec.input_channels;
  const uint32_t n = (uint32_t)spec.input_len * C;
  for (uint32_t i = 0; i < n; ++i) {
    const uint16_t c = (uint16_t)(i % C);
    q[i] = quantize_input_value(spec, (raw[i] - fspec.input_mean[c]) / fspec.input_std[c]);
  }
}

Status qrun_backbone(const QModelSpec& spec, const int8_t* input, int8_t* arena, uint32_t arena_bytes, int8_t* features,
                     QLayerHook hook, void* user) {
  if (!input || !arena || !features) return kErrBadArgument;
  const uint32_t half = arena_bytes / 2;
  int8_t* cur = arena;
  int8_t* nxt = arena + half;
  uint16_t T = spec.input_len, C = spec.input_channels;
  if ((uint32_t)T * C > half) return kErrArenaTooSmall;
  memcpy(cur, input, (uint32_t)T * C);
  for (uint16_t l = 0; l < spec.num_layers; ++l) {
    const QLayerSpec& L = spec.layers[l];
    uint16_t To = 0, Co = 0;
    if (!qlayer_out_shape(L, T, C, &To, &Co) || (uint32_t)To * Co > half) return kErrBadModel;
    switch (L.type) {
      case kConv1D: qconv1d(L, cur, T, nxt); break;
      case kDepthwiseConv1D: qdepthwise1d(L, cur, T, nxt); break;
      case kDense: qdense(L, cur, nxt); break;
      case kMaxPool1D: qmaxpool1d(L, cur, T, C, nxt); break;
      case kGlobalAvgPool1D: qmean1d(L, cur, T, C, nxt); break;
      default: return kErrBadModel;
    }
    int8_t* t = cur;
    cur = nxt;
    nxt = t;
    T = To;
    C = Co;
    if (hook) hook(l, cur, (uint32_t)T * C, user);
  }
  if (T != 1 || C != spec.feature_dim) return kErrBadModel;
  memcpy(features, cur, C);
  return kOk;
}

void qhead_quantize(QHeadView& h, const float* W, const float* b, uint16_t num_classes) {
  const uint32_t nw = (uint32_t)num_classes * h.feature_dim;
  float m = 0.0f;
  for (uint32_t i = 0; i < nw; ++i) m = fabsf(W[i]) > m ? fabsf(W[i]) : m;
  // a zero head (Lab 1 learns its head from zero) has no range: take Glorot-uniform's, sqrt(6 / (in + out))
  if (!(m > 0.0f)) m = sqrtf(6.0f / (float)(h.feature_dim + num_classes));
  h.w_scale = m / 127.0f;
  h.num_classes = num_classes;
  const float sb = h.w_scale * h.x_scale;
  for (uint32_t i = 0; i < nw; ++i) {
    float r = rintf(W[i] / h.w_scale);  // round half to even, as numpy's round
    r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
    h.Wq[i] = (int8_t)(int32_t)r;
    h.latW[i] = r;
  }
  for (uint16_t c = 0; c < num_classes; ++c) {
    const float r = rintf(b[c] / sb);
    h.bq[c] = (int32_t)r;
    h.latb[c] = r;
  }
}

void qhead_resize(QHeadView& h, uint16_t num_classes) {
  for (uint16_t c = h.num_classes; c < num_classes; ++c) {
    const uint32_t r = (uint32_t)c * h.feature_dim;
    memset(h.Wq + r, 0, h.feature_dim);
    for (uint16_t f = 0; f < h.feature_dim; ++f) h.latW[r + f] = 0.0f;
    h.bq[c] = 0;
    h.latb[c] = 0.0f;
  }
  h.num_classes = num_classes;
}

int qhead_forward(QHeadView& h, const int8_t* x, uint16_t y, float* lin, float* sum) {
  const uint16_t nc = h.num_classes, fd = h.feature_dim;
  const float s = h.w_scale * h.x_scale;
  for (uint16_t c = 0; c < nc; ++c) {
    const int8_t* w = h.Wq + (uint32_t)c * fd;
    int32_t acc = h.bq[c];
    for (uint16_t f = 0; f < fd; ++f) acc += (int32_t)w[f] * ((int32_t)x[f] - h.x_zero);
    h.probs[c] = (float)acc * s;
  }
  return softmax_loss(h.probs, nc, y, lin, sum);
}

// latent -> int8 / int32 tensors (round half to even; the kernel clamped to [-127, 127] as ch02's).
static void qhead_requantize(QHeadView& h) {
  const uint32_t nw = (uint32_t)h.num_classes * h.feature_dim;
  for (uint32_t i = 0; i < nw; ++i) {
    float r = h.latW[i];
    r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
    h.latW[i] = r;
    h.Wq[i] = (int8_t)(int32_t)rintf(r);
  }
  for (uint16_t c = 0; c < h.num_classes; ++c) {
    float r = h.latb[c];
    r = r > 2.0e9f ? 2.0e9f : (r < -2.0e9f ? -2.0e9f : r);
    h.latb[c] = r;
    h.bq[c] = (int32_t)rintf(r);
  }
}

Status qhead_train(QHeadView& h, StoreView& s, const int8_t* qfeatures, const TrainConfig& cfg, bool qas,
                   EpochCallback cb, void* user, uint32_t* steps) {
  *steps = 0;
  if (!sgd_config_ok(cfg) || cfg.mode != kTrainFull || !qfeatures) return kErrBadArgument;
  uint32_t n = 0;
  const Status sel = select_training_samples(s, cfg.use_replay, h.num_classes, &n);
  if (sel != kOk) return sel;
  const uint16_t nc = h.num_classes, fd = h.feature_dim;
  const uint32_t nw = (uint32_t)nc * fd;
  // dL/dWq = s_W dL/dW; QAS: / s_W^2.  dL/dbq = s_W s_x dL/db; QAS: / (s_W s_x)^2.
  const float sw = h.w_scale, sb = h.w_scale * h.x_scale;
  const float kw = qas ? 1.0f / sw : sw;
  const float kb = qas ? 1.0f / sb : sb;
  memset(h.vW, 0, sizeof(float) * nw);
  memset(h.vb, 0, sizeof(float) * nc);
  struct Trainer {
    QHeadView& h;
    const StoreView& s;
    const int8_t* qfeatures;
    const TrainConfig& cfg;
    uint32_t nw;
    float kw, kb;
    void begin_batch() {
      memset(h.gW, 0, sizeof(float) * nw);
      memset(h.gb, 0, sizeof(float) * h.num_classes);
    }
    int sample(uint32_t idx, float* lin, float* sum) {
      const uint16_t fd = h.feature_dim, y = s.labels[idx];
      const int8_t* x = qfeatures + idx * fd;
      const int pred = qhead_forward(h, x, y, lin, sum);
      h.probs[y] -= 1.0f;  // dL/dz = p - onehot
      for (uint16_t f = 0; f < fd; ++f) h.xr[f] = h.x_scale * (float)((int32_t)x[f] - h.x_zero);
      for (uint16_t c = 0; c < h.num_classes; ++c) {
        h.gb[c] += h.probs[c];
        axpy(h.gW + (uint32_t)c * fd, h.probs[c], h.xr, fd);
      }
      return pred;
    }
    void step(float inv_m) {
      sgd_momentum(h.latW, h.vW, h.gW, nw, inv_m * kw, cfg.weight_decay, cfg.momentum, cfg.lr);
      sgd_momentum(h.latb, h.vb, h.gb, h.num_classes, inv_m * kb, 0.0f, cfg.momentum, cfg.lr);
      qhead_requantize(h);
    }
    bool epoch_done(const EpochResult& r) {
      return is_finite(r.loss) && all_finite(h.latW, nw) && all_finite(h.latb, h.num_classes);
    }
  } t{h, s, qfeatures, cfg, nw, kw, kb};
  return train_epochs(s, n, cfg, t, cb, user, steps);
}

Status qhead_evaluate(QHeadView& h, const StoreView& s, const int8_t* qfeatures, bool use_replay, EvalResult* out,
                      uint16_t* confusion) {
  if (!qfeatures) return kErrBadArgument;
  return evaluate_store(
      s, use_replay, h.num_classes, h.max_classes,
      [&h, qfeatures](uint32_t i, uint16_t y, float* lin, float* sum) {
        return qhead_forward(h, qfeatures + i * h.feature_dim, y, lin, sum);
      },
      out, confusion);
}

}  // namespace odl
ODL_NUMERICS_END
