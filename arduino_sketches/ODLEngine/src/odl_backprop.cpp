#include "odl_backprop.h"
#include "odl_numerics.h"

#include <math.h>
#include <string.h>

#include "odl_kernels.h"

ODL_NUMERICS_BEGIN
namespace odl {

namespace {

bool has_weights(const LayerSpec& L) {
  return (L.type == kConv1D || L.type == kDepthwiseConv1D || L.type == kDense) && L.weights;
}

uint32_t kernel_count(const LayerSpec& L) {
  switch (L.type) {
    case kConv1D: return (uint32_t)L.kernel * L.in_channels * L.out_channels;
    case kDepthwiseConv1D: return (uint32_t)L.kernel * L.in_channels;
    case kDense: return (uint32_t)L.in_channels * L.out_channels;
    default: return 0;
  }
}

bool output_relu(const LayerSpec& L) { return L.type == kReLU || L.activation == kActRelu; }

uint8_t argmax_bits(uint16_t pool) {
  uint8_t b = 0;
  while ((1u << b) < pool) ++b;
  return b ? b : 1;
}

// The layout of a plan, into lp (if not null); returns the bytes used or kNoBuffer if invalid.
uint32_t layout(const BackboneView& bb, uint8_t plan, uint8_t k, LayerPlan* lp, uint16_t* first_out) {
  const ModelSpec& m = *bb.exported;
  if (m.num_layers > bb.max_layers || (plan != kPlanBias && plan != kPlanSparse)) return kNoBuffer;
  uint16_t n_weighted = 0;
  for (uint16_t l = 0; l < m.num_layers; ++l)
    if (has_weights(m.layers[l])) ++n_weighted;
  if (plan == kPlanSparse && (k < 1 || k > n_weighted)) return kNoBuffer;
  if (plan == kPlanBias) k = 0;
  uint32_t off = 0;
  uint16_t T = m.input_len, C = m.input_channels, seen_weighted = 0, first = m.num_layers;
  uint32_t bit_bytes = 0;
  bool any_before = false;  // some earlier layer is updated: the gradient must reach this layer's input
  LayerPlan tmp;
  for (uint16_t l = 0; l < m.num_layers; ++l) {
    const LayerSpec& L = m.layers[l];
    LayerPlan& P = lp ? lp[l] : tmp;
    uint16_t To = 0, Co = 0;
    if (!layer_out_shape(L, T, C, &To, &Co)) return kNoBuffer;
    P.in_T = T;
    P.in_C = C;
    P.out_T = To;
    P.out_C = Co;
    P.b = P.gb = P.vb = P.w = P.gw = P.vw = P.x = P.bits = kNoBuffer;
    P.update_bias = P.update_kernel = 0;
    if (has_weights(L)) {
      ++seen_weighted;
      P.update_bias = L.bias ? 1 : 0;
      P.update_kernel = seen_weighted + k > n_weighted ? 1 : 0;
    }
    P.grad_in = any_before ? 1 : 0;
    const bool updated = P.update_bias || P.update_kernel;
    P.mask = output_relu(L) && (updated || any_before) ? 1 : 0;
    P.arg_bits = L.type == kMaxPool1D && any_before ? argmax_bits(L.kernel) : 0;
    if (updated && first == m.num_layers) first = l;
    any_before = any_before || updated;
    // floats: bias (copy, gradient, momentum), kernel (copy, gradient, momentum), stored input
    if (P.update_bias) {
      P.b = off;
      P.gb = off + 4u * Co;
      P.vb = off + 8u * Co;
      off += 12u * Co;
    }
    if (P.update_kernel) {
      const uint32_t nk = kernel_count(L);
      P.w = off;
      P.gw = off + 4u * nk;
      P.vw = off + 8u * nk;
      off += 12u * nk;
      P.x = off;
      off += 4u * T * C;
    }
    // bits: ReLU mask + MaxPool argmax of the output, counted here, placed after every float buffer
    const uint32_t n_out = (uint32_t)To * Co;
    const uint32_t nbits = (P.mask ? n_out : 0u) + (uint32_t)P.arg_bits * n_out;
    P.bits = (nbits + 7u) / 8u;  // a byte count until the offsets are assigned below
    bit_bytes += P.bits;
    T = To;
    C = Co;
  }
  if (lp) {
    uint32_t at = off;
    for (uint16_t l = 0; l < m.num_layers; ++l) {
      const uint32_t nb = lp[l].bits;
      lp[l].bits = nb ? at : kNoBuffer;
      at += nb;
    }
  }
  off += bit_bytes;
  if (first_out) *first_out = first;
  return off;
}

// Writes values of nbits bits one after the other, least significant bit first (a byte at a time).
struct BitWriter {
  uint8_t* p;
  uint32_t acc;
  uint8_t n;
  explicit BitWriter(uint8_t* out) : p(out), acc(0), n(0) {}
  void put(uint32_t v, uint8_t nbits) {
    acc |= v << n;
    n = (uint8_t)(n + nbits);
    while (n >= 8) {
      *p++ = (uint8_t)acc;
      acc >>= 8;
      n = (uint8_t)(n - 8);
    }
  }
  void flush() {
    if (n) *p = (uint8_t)acc;
  }
};
inline uint32_t get_bits(const uint8_t* b, uint32_t pos, uint8_t nbits) {
  uint32_t v = 0;
  for (uint8_t i = 0; i < nbits; ++i, ++pos) v |= (uint32_t)((b[pos >> 3] >> (pos & 7u)) & 1u) << i;
  return v;
}

// dy[i] = 0 where the stored mask bit is 0: the shared relu_backward_inplace on 32-element chunks
// unpacked from the bits (128 bytes of stack, never a float copy of the layer's output).
void apply_relu_mask(const uint8_t* bits, float* dy, uint32_t n) {
  float chunk[32];
  for (uint32_t s = 0; s < n; s += 32) {
    const uint32_t m = n - s < 32 ? n - s : 32;
    for (uint32_t i = 0; i < m; i += 8) {
      const uint32_t byte = bits[(s + i) >> 3];
      const uint32_t e = m - i < 8 ? m - i : 8;
      for (uint32_t j = 0; j < e; ++j) chunk[i + j] = (byte >> j) & 1u ? 1.0f : 0.0f;
    }
    relu_backward_inplace(chunk, dy + s, m);
  }
}

void maxpool1d_backward(const uint8_t* bits, uint8_t nbits, uint16_t T, uint16_t C, uint16_t pool, const float* dy,
                        float* dx) {
  memset(dx, 0, sizeof(float) * T * C);
  const uint16_t To = (uint16_t)(T / pool);
  for (uint16_t t = 0; t < To; ++t)
    for (uint16_t c = 0; c < C; ++c) {
      const uint32_t e = (uint32_t)t * C + c;
      const uint32_t j = get_bits(bits, e * nbits, nbits);
      dx[((uint32_t)t * pool + j) * C + c] = dy[e];
    }
}

inline float* fbuf(const BackboneView& bb, uint32_t off) { return off == kNoBuffer ? nullptr : (float*)(bb.buf + off); }

// The tape of the training forward (run_layers' hooks): stores what the plan's backward needs.
struct Tape {
  BackboneView& bb;
  void input(uint16_t l, const float* x, uint16_t T, uint16_t C) {
    const LayerPlan& P = bb.lplan[l];
    if (P.x != kNoBuffer) memcpy(fbuf(bb, P.x), x, sizeof(float) * T * C);
  }
  void output(uint16_t l, const float* x, const float* y, uint16_t To, uint16_t C) {
    const LayerPlan& P = bb.lplan[l];
    const uint16_t pool = bb.model->layers[l].kernel;
    if (!P.arg_bits) return;  // MaxPool: the first index reaching the max, as maxpool1d picks it
    BitWriter w(bb.buf + P.bits);
    for (uint16_t t = 0; t < To; ++t)
      for (uint16_t c = 0; c < C; ++c) {
        const uint32_t e = (uint32_t)t * C + c;
        uint32_t j = 0;
        while (j + 1 < pool && !(x[((uint32_t)t * pool + j) * C + c] == y[e])) ++j;
        w.put(j, P.arg_bits);
      }
    w.flush();
  }
  void activated(uint16_t l, const float* y, uint16_t T, uint16_t C) {
    const LayerPlan& P = bb.lplan[l];
    if (!P.mask) return;  // one bit per output element, a byte at a time
    uint8_t* b = bb.buf + P.bits;
    const uint32_t n = (uint32_t)T * C;
    for (uint32_t i = 0; i < n; i += 8) {
      const uint32_t m = n - i < 8 ? n - i : 8;
      uint8_t byte = 0;
      for (uint32_t j = 0; j < m; ++j)
        if (y[i + j] > 0.0f) byte = (uint8_t)(byte | (1u << j));
      *b++ = byte;
    }
  }
};

// Forward from a normalized window (already in the first arena half) through the model; with
// `tape`, stores what the plan's backward needs. Returns the features (inside the arena).
const float* forward(BackboneView& bb, bool tape) {
  uint16_t T = 0, C = 0;
  const uint32_t half = bb.arena_floats / 2;
  if (!tape) {
    NoTap none;
    return run_layers(*bb.model, bb.arena, half, none, &T, &C);
  }
  Tape t{bb};
  return run_layers(*bb.model, bb.arena, half, t, &T, &C);
}

void load_window(BackboneView& bb, const int16_t* q) {
  const uint32_t n = bb.window_values;
  for (uint32_t i = 0; i < n; ++i) bb.arena[i] = (float)q[i] * kWindowScale;
}

// Back-propagates dy (features gradient, in the arena half `dy`) down to bb.first,
// accumulating the parameter gradients.
void backward(BackboneView& bb, float* dy, float* dx) {
  const ModelSpec& m = *bb.model;
  for (int l = (int)m.num_layers - 1; l >= (int)bb.first; --l) {
    const LayerSpec& L = m.layers[l];
    const LayerPlan& P = bb.lplan[l];
    if (P.mask) apply_relu_mask(bb.buf + P.bits, dy, (uint32_t)P.out_T * P.out_C);
    if (L.type == kReLU) continue;  // in place: dx is the masked dy
    float* gx = P.grad_in ? dx : nullptr;
    const float* x = fbuf(bb, P.x);
    switch (L.type) {
      case kDense: dense_backward(x, P.in_C, L.weights, P.out_C, dy, fbuf(bb, P.gw), fbuf(bb, P.gb), gx); break;
      case kConv1D:
        conv1d_backward(x, P.in_T, P.in_C, L.weights, L.kernel, P.out_C, dy, fbuf(bb, P.gw), fbuf(bb, P.gb), gx);
        break;
      case kDepthwiseConv1D:
        depthwise_conv1d_backward(x, P.in_T, P.in_C, L.weights, L.kernel, dy, fbuf(bb, P.gw), fbuf(bb, P.gb), gx);
        break;
      case kMaxPool1D:
        if (gx) maxpool1d_backward(bb.buf + P.bits, P.arg_bits, P.in_T, P.in_C, L.kernel, dy, gx);
        break;
      case kGlobalAvgPool1D:
        if (gx) global_avg_pool1d_backward(dy, P.in_T, P.in_C, gx);
        break;
      default: break;
    }
    if (!gx) break;
    float* t = dy;
    dy = dx;
    dx = t;
  }
}

}  // namespace

Status backbone_bind(BackboneView& bb, const ModelSpec& spec) {
  bb.exported = &spec;
  bb.configured = false;
  bb.used = 0;
  bb.plan = kPlanHead;
  bb.sparse_layers = 0;
  if (bb.max_layers == 0) return kOk;  // no plan buffer: the engine runs the exported model
  if (spec.num_layers > bb.max_layers) return kErrBadModel;
  *bb.model = spec;
  backbone_reset(bb);
  return kOk;
}

void backbone_reset(BackboneView& bb) {
  bb.configured = false;
  bb.used = 0;
  bb.plan = kPlanHead;
  bb.sparse_layers = 0;
  if (bb.max_layers == 0 || !bb.exported) return;
  for (uint16_t l = 0; l < bb.exported->num_layers; ++l) bb.layers[l] = bb.exported->layers[l];
  bb.model->layers = bb.layers;
}

Status plan_bytes(const BackboneView& bb, uint8_t plan, uint8_t sparse_layers, uint32_t* bytes) {
  if (!bb.exported || bb.max_layers == 0) return kErrPlanTooLarge;
  const uint32_t n = layout(bb, plan, sparse_layers, nullptr, nullptr);
  if (n == kNoBuffer) return kErrBadArgument;
  *bytes = n;
  return kOk;
}

Status plan_layout(const BackboneView& bb, uint8_t plan, uint8_t sparse_layers, LayerPlan* into) {
  if (!bb.exported || bb.max_layers == 0) return kErrPlanTooLarge;
  uint16_t first = 0;
  return layout(bb, plan, sparse_layers, into, &first) == kNoBuffer ? kErrBadArgument : kOk;
}

uint32_t layer_kernel_floats(const LayerSpec& L) { return kernel_count(L); }

Status plan_configure(BackboneView& bb, uint8_t plan, uint8_t sparse_layers) {
  if (!bb.exported) return kErrNotBegun;
  if (plan == kPlanSparse && bb.configured && bb.plan == kPlanSparse && bb.sparse_layers == sparse_layers) return kOk;
  if (plan == kPlanBias && bb.configured && bb.plan == kPlanBias) return kOk;
  if (bb.max_layers == 0) return plan == kPlanBias || plan == kPlanSparse ? kErrPlanTooLarge : kErrBadArgument;
  if (bb.window_capacity == 0) return kErrNoWindows;
  uint32_t need = 0;
  Status s = plan_bytes(bb, plan, sparse_layers, &need);
  if (s != kOk) return s;
  if (need > bb.capacity) return kErrPlanTooLarge;
  backbone_reset(bb);
  uint16_t first = 0;
  bb.used = layout(bb, plan, sparse_layers, bb.lplan, &first);
  bb.first = first;
  memset(bb.buf, 0, bb.used);
  for (uint16_t l = 0; l < bb.exported->num_layers; ++l) {
    const LayerPlan& P = bb.lplan[l];
    LayerSpec& L = bb.layers[l];
    if (P.update_bias) {
      float* b = fbuf(bb, P.b);
      memcpy(b, L.bias, sizeof(float) * P.out_C);
      L.bias = b;
    }
    if (P.update_kernel) {
      float* w = fbuf(bb, P.w);
      memcpy(w, L.weights, sizeof(float) * kernel_count(L));
      L.weights = w;
    }
  }
  bb.configured = true;
  bb.plan = plan;
  bb.sparse_layers = plan == kPlanSparse ? sparse_layers : 0;
  return kOk;
}

void window_store(BackboneView& bb, uint32_t slot, const float* raw) {
  if (slot >= bb.window_capacity) return;
  const ModelSpec& m = *bb.exported;
  int16_t* q = bb.windows + slot * bb.window_values;
  for (uint16_t t = 0; t < m.input_len; ++t)
    for (uint16_t c = 0; c < m.input_channels; ++c) {
      const uint32_t k = (uint32_t)t * m.input_channels + c;
      const float v = (raw[k] - m.input_mean[c]) / m.input_std[c] * 4096.0f;
      float r = v >= 0.0f ? v + 0.5f : v - 0.5f;  // round half away from zero
      if (!(r < 32767.0f)) r = 32767.0f;
      if (!(r > -32767.0f)) r = -32767.0f;
      q[k] = (int16_t)(int32_t)r;
    }
}

Status window_features(BackboneView& bb, const int16_t* q, float* features) {
  load_window(bb, q);
  const float* f = forward(bb, false);
  if (!f) return kErrBadModel;
  memcpy(features, f, sizeof(float) * bb.model->feature_dim);
  return kOk;
}

Status plan_refresh_features(BackboneView& bb, StoreView& s) {
  const uint32_t n = s.count < bb.window_capacity ? s.count : bb.window_capacity;
  for (uint32_t i = 0; i < n; ++i)
    window_features(bb, bb.windows + i * bb.window_values, s.features + i * s.feature_dim);
  return kOk;
}

Status plan_train(BackboneView& bb, HeadView& h, StoreView& s, const TrainConfig& cfg, EpochCallback cb, void* user,
                  uint32_t* steps) {
  *steps = 0;
  if (!sgd_config_ok(cfg) || cfg.mode > kTrainBiasOnly) return kErrBadArgument;
  Status st = plan_configure(bb, cfg.plan, cfg.sparse_layers);
  if (st != kOk) return st;
  uint32_t n = 0;
  const Status sel = select_training_samples(s, cfg.use_replay, h.num_classes, &n, bb.window_capacity);
  if (sel != kOk) return sel;
  const ModelSpec& m = *bb.model;
  const uint16_t nc = h.num_classes, fd = h.feature_dim;
  const uint32_t nw = (uint32_t)nc * fd;
  const bool full = cfg.mode == kTrainFull;
  memset(h.vW, 0, sizeof(float) * nw);
  memset(h.vb, 0, sizeof(float) * nc);
  for (uint16_t l = 0; l < m.num_layers; ++l) {  // momentum starts at zero in every call
    const LayerPlan& P = bb.lplan[l];
    if (P.update_bias) memset(fbuf(bb, P.vb), 0, sizeof(float) * P.out_C);
    if (P.update_kernel) memset(fbuf(bb, P.vw), 0, sizeof(float) * kernel_count(m.layers[l]));
  }
  struct Trainer {
    BackboneView& bb;
    HeadView& h;
    const StoreView& s;
    const TrainConfig& cfg;
    bool full;
    uint32_t nw;
    void begin_batch() {
      const ModelSpec& m = *bb.model;
      if (full) memset(h.gW, 0, sizeof(float) * nw);
      memset(h.gb, 0, sizeof(float) * h.num_classes);
      for (uint16_t l = 0; l < m.num_layers; ++l) {
        const LayerPlan& P = bb.lplan[l];
        if (P.update_bias) memset(fbuf(bb, P.gb), 0, sizeof(float) * P.out_C);
        if (P.update_kernel) memset(fbuf(bb, P.gw), 0, sizeof(float) * kernel_count(m.layers[l]));
      }
    }
    int sample(uint32_t idx, float* lin, float* sum) {
      const uint16_t y = s.labels[idx], nc = h.num_classes, fd = h.feature_dim;
      const uint32_t half = bb.arena_floats / 2;
      load_window(bb, bb.windows + idx * bb.window_values);
      const float* x = forward(bb, true);
      const int pred = head_forward_loss(h, x, y, lin, sum);
      h.probs[y] -= 1.0f;  // dL/dz = p - onehot
      // dL/dfeatures = W^T dz with the weights before this batch's update, into the half x is not in
      float* dfeat = x == bb.arena ? bb.arena + half : bb.arena;
      memset(dfeat, 0, sizeof(float) * fd);
      for (uint16_t c = 0; c < nc; ++c) {
        const float d = h.probs[c];
        h.gb[c] += d;
        if (full) axpy(h.gW + (uint32_t)c * fd, d, x, fd);
        axpy(dfeat, d, h.W + (uint32_t)c * fd, fd);
      }
      backward(bb, dfeat, dfeat == bb.arena ? bb.arena + half : bb.arena);
      return pred;
    }
    void step(float inv_m) {
      const ModelSpec& m = *bb.model;
      if (full) sgd_momentum(h.W, h.vW, h.gW, nw, inv_m, cfg.weight_decay, cfg.momentum, cfg.lr);
      for (uint16_t c = 0; c < h.num_classes; ++c) {
        const float g = h.gb[c] * inv_m;
        h.vb[c] = cfg.momentum * h.vb[c] - cfg.lr * g;
        h.b[c] += h.vb[c];
      }
      for (uint16_t l = 0; l < m.num_layers; ++l) {
        const LayerPlan& P = bb.lplan[l];
        if (P.update_bias)
          sgd_momentum(fbuf(bb, P.b), fbuf(bb, P.vb), fbuf(bb, P.gb), P.out_C, inv_m, 0.0f, cfg.momentum, cfg.lr);
        if (P.update_kernel)
          sgd_momentum(fbuf(bb, P.w), fbuf(bb, P.vw), fbuf(bb, P.gw), kernel_count(m.layers[l]), inv_m,
                       cfg.weight_decay, cfg.momentum, cfg.lr);
      }
    }
    bool epoch_done(const EpochResult& r) {
      const ModelSpec& m = *bb.model;
      bool finite = is_finite(r.loss) && all_finite(h.W, nw) && all_finite(h.b, h.num_classes);
      for (uint16_t l = 0; finite && l < m.num_layers; ++l) {
        const LayerPlan& P = bb.lplan[l];
        if (P.update_bias && !all_finite(fbuf(bb, P.b), P.out_C)) finite = false;
        if (P.update_kernel && !all_finite(fbuf(bb, P.w), kernel_count(m.layers[l]))) finite = false;
      }
      if (!finite) backbone_reset(bb);  // the caller restores the head
      return finite;
    }
  } t{bb, h, s, cfg, full, nw};
  st = train_epochs(s, n, cfg, t, cb, user, steps);
  if (st != kOk) return st;
  return plan_refresh_features(bb, s);
}

}  // namespace odl
ODL_NUMERICS_END
