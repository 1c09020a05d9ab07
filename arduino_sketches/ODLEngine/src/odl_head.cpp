#include "odl_head.h"
#include "odl_numerics.h"

#include <math.h>
#include <string.h>

#include "odl_kernels.h"
#include "odl_rng.h"

ODL_NUMERICS_BEGIN
namespace odl {

const char* status_str(int status) {
  switch (status) {
    case kOk: return "ok";
    case kErrNotBegun: return "engine not started: call begin(model) first";
    case kErrBadArgument: return "bad argument (null pointer, zero size or out of range)";
    case kErrFeatureDim: return "model feature_dim differs from the engine's FeatureDim";
    case kErrTooManyClasses: return "too many classes: raise MaxClasses (ODL_MAX_CLASSES)";
    case kErrArenaTooSmall: return "activation arena too small: use ODL_ARENA_FLOATS";
    case kErrBadModel: return "model layer list is inconsistent: regenerate odl_model_data.h";
    case kErrBadLabel: return "label out of range: add the class first";
    case kErrNoSamples: return "no samples: record some first";
    case kErrBufferTooSmall: return "output buffer too small for the weights blob";
    case kErrBlobMagic: return "weights blob: bad magic (not ODLW)";
    case kErrBlobVersion: return "weights blob: unsupported format version or dtype";
    case kErrBlobSize: return "weights blob: length does not match its header";
    case kErrBlobCrc: return "weights blob: CRC32 mismatch (corrupted)";
    case kErrBlobShape: return "weights blob: feature_dim or class count does not fit this engine";
    case kErrStorageIo: return "storage refused an erase/write/read";
    case kErrStorageEmpty: return "storage holds no valid weights";
    case kErrStorageTooSmall: return "weights record larger than a storage slot";
    case kErrDuplicateClass: return "class name already exists";
    case kErrNonFinite: return "non-finite value (NaN or Inf) refused, nothing changed";
    case kErrDiverged: return "training diverged (non-finite loss): weights restored to before the call";
    case kErrPlanTooLarge: return "update plan does not fit the engine's plan buffer (PlanBytes): use fewer layers";
    case kErrNoWindows: return "backbone plans need stored windows: build the engine with WindowCapacity > 0";
    case kErrNoInt8: return "this engine has no int8 path: build it with Int8 and call begin_int8";
    default: return "unknown error";
  }
}

static void copy_name(char* dst, const char* src) {
  memset(dst, 0, kClassNameBytes);
  if (!src) return;
  for (uint16_t i = 0; i + 1 < kClassNameBytes && src[i]; ++i) dst[i] = src[i];
}

void head_load_initial(HeadView& h, const ModelSpec& spec) {
  const uint32_t fd = h.feature_dim;
  memset(h.W, 0, sizeof(float) * h.max_classes * fd);
  memset(h.b, 0, sizeof(float) * h.max_classes);
  memset(h.vW, 0, sizeof(float) * h.max_classes * fd);
  memset(h.vb, 0, sizeof(float) * h.max_classes);
  memset(h.names, 0, (size_t)kClassNameBytes * h.max_classes);
  h.num_classes = spec.num_classes;
  for (uint16_t c = 0; c < spec.num_classes; ++c) {
    copy_name(h.names[c], spec.class_names[c]);
    memcpy(h.W + c * fd, spec.head_weights + c * fd, sizeof(float) * fd);
    h.b[c] = spec.head_bias[c];
  }
}

int head_add_class(HeadView& h, const char* name) {
  if (!name || !name[0]) return kErrBadArgument;
  char tmp[kClassNameBytes];
  copy_name(tmp, name);
  for (uint16_t c = 0; c < h.num_classes; ++c)
    if (memcmp(tmp, h.names[c], kClassNameBytes) == 0) return kErrDuplicateClass;
  if (h.num_classes >= h.max_classes) return kErrTooManyClasses;
  const uint16_t c = h.num_classes;
  memcpy(h.names[c], tmp, kClassNameBytes);
  memset(h.W + (uint32_t)c * h.feature_dim, 0, sizeof(float) * h.feature_dim);
  memset(h.vW + (uint32_t)c * h.feature_dim, 0, sizeof(float) * h.feature_dim);
  h.b[c] = 0.0f;
  h.vb[c] = 0.0f;
  h.num_classes = (uint16_t)(c + 1);
  return c;
}

// exp for x <= 0 (softmax after subtracting the max), written out so that the
// host, qemu and the board compute bit-identical results (libm expf differs
// between glibc and newlib). Cephes expf: x = n ln2 + r, degree-5 polynomial
// for e^r, scaled by 2^n via the exponent bits; max relative error ~2e-7.
float exp_nonpos(float x) {
  if (!(x > -87.0f)) return 0.0f;  // also catches NaN
  if (x > 0.0f) x = 0.0f;
  const float t = x * 1.44269504088896341f + 0.5f;
  int n = (int)t;  // truncates toward zero; t <= 0.5 so floor is n or n - 1
  if ((float)n > t) --n;
  const float fx = (float)n;
  float r = x - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  uint32_t bits = (uint32_t)(n + 127) << 23;  // n in [-126, 0]
  float scale;
  memcpy(&scale, &bits, 4);
  return y * scale;
}

// Writes softmax(W x + b) into h.probs; returns the argmax class. The
// cross-entropy of label y is (zmax - z_y) + log(sum): if given, *lin receives
// zmax - z_y and *sum the softmax denominator (>= 1), so the caller can take one
// log per batch instead of one per sample (exact even when p_y underflows).
int softmax_loss(float* z, uint16_t n, uint16_t y, float* lin, float* sum_out) {
  float zmax = -INFINITY;
  int best = 0;
  for (uint16_t c = 0; c < n; ++c)
    if (z[c] > zmax) {
      zmax = z[c];
      best = c;
    }
  const float zy = y < n ? z[y] : 0.0f;
  float sum = 0.0f;
  for (uint16_t c = 0; c < n; ++c) {
    z[c] = exp_nonpos(z[c] - zmax);
    sum += z[c];
  }
  const float inv = 1.0f / sum;
  for (uint16_t c = 0; c < n; ++c) z[c] *= inv;
  if (lin) *lin = zmax - zy;
  if (sum_out) *sum_out = sum;
  return best;
}

// Writes softmax(W x + b) into h.probs; returns the argmax class (softmax_loss).
static int forward_softmax(HeadView& h, const float* x, uint16_t y = 0, float* lin = nullptr,
                           float* sum_out = nullptr) {
  const uint16_t nc = h.num_classes, fd = h.feature_dim;
  for (uint16_t c = 0; c < nc; ++c) h.probs[c] = dot_acc(h.b[c], h.W + (uint32_t)c * fd, x, fd);
  return softmax_loss(h.probs, nc, y, lin, sum_out);
}

int head_forward(HeadView& h, const float* x) { return forward_softmax(h, x); }
int head_forward_loss(HeadView& h, const float* x, uint16_t y, float* lin, float* sum) {
  return forward_softmax(h, x, y, lin, sum);
}

Status head_predict(HeadView& h, const float* features, Prediction* out) {
  if (!features || !out) return kErrBadArgument;
  if (h.num_classes == 0) return kErrNoSamples;
  const int best = head_forward(h, features);
  out->label = (int16_t)best;
  out->confidence = h.probs[best];
  out->probs = h.probs;
  out->num_classes = h.num_classes;
  return kOk;
}

void store_clear(StoreView& s, uint32_t seed) {
  s.count = 0;
  s.seen = 0;
  s.session = 0;
  s.rng_reservoir = rng_seed_reservoir(seed);
  s.rng_shuffle = rng_seed_shuffle(seed);
}

Status head_remove_last_class(HeadView& h, const StoreView& s) {
  if (h.num_classes == 0) return kErrBadArgument;
  const uint16_t c = (uint16_t)(h.num_classes - 1);
  for (uint32_t i = 0; i < s.count; ++i)
    if (s.labels[i] == c) return kErrBadLabel;
  memset(h.names[c], 0, kClassNameBytes);
  memset(h.W + (uint32_t)c * h.feature_dim, 0, sizeof(float) * h.feature_dim);
  h.b[c] = 0.0f;
  h.num_classes = c;
  return kOk;
}

Status store_add(StoreView& s, const HeadView& h, const float* features, uint16_t label, uint32_t* slot_out) {
  if (slot_out) *slot_out = s.capacity;
  if (!features) return kErrBadArgument;
  if (label >= h.num_classes) return kErrBadLabel;
  // one NaN feature would turn every later prediction into class 0
  if (!all_finite(features, s.feature_dim)) return kErrNonFinite;
  if (s.capacity == 0) return kErrBadArgument;
  s.seen++;
  uint32_t slot;
  if (s.count < s.capacity) {
    slot = s.count++;
  } else {
    slot = xorshift32(&s.rng_reservoir) % s.seen;
    if (slot >= s.capacity) return kOk;  // not kept (reservoir)
  }
  memcpy(s.features + slot * s.feature_dim, features, sizeof(float) * s.feature_dim);
  if (slot_out) *slot_out = slot;
  s.labels[slot] = label;
  s.sessions[slot] = s.session;
  return kOk;
}

uint32_t select_samples(StoreView& s, bool use_replay, uint32_t limit) {
  const uint32_t have = s.count < limit ? s.count : limit;
  uint32_t n = 0;
  for (uint32_t i = 0; i < have; ++i)
    if (use_replay || s.sessions[i] == s.session) s.order[n++] = (uint16_t)i;
  return n;
}

bool sgd_config_ok(const TrainConfig& cfg) {
  // Written as the negation of the rejections so NaN settings fall where they always did.
  return !(cfg.batch_size == 0 || cfg.epochs == 0 || !(cfg.lr > 0.0f) || cfg.momentum < 0.0f || cfg.momentum >= 1.0f ||
           cfg.weight_decay < 0.0f);
}

Status select_training_samples(StoreView& s, bool use_replay, uint16_t num_classes, uint32_t* n, uint32_t limit) {
  *n = 0;
  if (num_classes == 0) return kErrNoSamples;
  const uint32_t k_n = select_samples(s, use_replay, limit);
  if (k_n == 0) return kErrNoSamples;
  for (uint32_t k = 0; k < k_n; ++k)
    if (s.labels[s.order[k]] >= num_classes) return kErrBadLabel;
  *n = k_n;
  return kOk;
}

void store_shuffle(StoreView& s, uint32_t n) {
  for (uint32_t i = n - 1; n > 1 && i > 0; --i) {
    const uint32_t j = xorshift32(&s.rng_shuffle) % (i + 1);
    const uint16_t t = s.order[i];
    s.order[i] = s.order[j];
    s.order[j] = t;
  }
}

Status head_train(HeadView& h, StoreView& s, const TrainConfig& cfg, EpochCallback cb, void* user) {
  if (!sgd_config_ok(cfg) || cfg.mode > kTrainBiasOnly) return kErrBadArgument;
  uint32_t n = 0;
  const Status sel = select_training_samples(s, cfg.use_replay, h.num_classes, &n);
  if (sel != kOk) return sel;
  const uint16_t nc = h.num_classes, fd = h.feature_dim;
  const uint32_t nw = (uint32_t)nc * fd;
  const bool full = cfg.mode == kTrainFull;
  memset(h.vW, 0, sizeof(float) * nw);
  memset(h.vb, 0, sizeof(float) * nc);
  struct Trainer {
    HeadView& h;
    const StoreView& s;
    const TrainConfig& cfg;
    bool full;
    uint32_t nw;
    void begin_batch() {
      if (full) memset(h.gW, 0, sizeof(float) * nw);
      memset(h.gb, 0, sizeof(float) * h.num_classes);
    }
    int sample(uint32_t idx, float* lin, float* sum) {
      const float* x = s.features + idx * h.feature_dim;
      const uint16_t y = s.labels[idx];
      const int pred = forward_softmax(h, x, y, lin, sum);
      h.probs[y] -= 1.0f;  // dL/dz = p - onehot
      for (uint16_t c = 0; c < h.num_classes; ++c) {
        const float d = h.probs[c];
        h.gb[c] += d;
        if (full) axpy(h.gW + (uint32_t)c * h.feature_dim, d, x, h.feature_dim);
      }
      return pred;
    }
    void step(float inv_m) {
      if (full) sgd_momentum(h.W, h.vW, h.gW, nw, inv_m, cfg.weight_decay, cfg.momentum, cfg.lr);
      for (uint16_t c = 0; c < h.num_classes; ++c) {
        const float g = h.gb[c] * inv_m;
        h.vb[c] = cfg.momentum * h.vb[c] - cfg.lr * g;
        h.b[c] += h.vb[c];
      }
    }
    // the caller (Engine::train) restores the weights from before the call on kErrDiverged
    bool epoch_done(const EpochResult& r) {
      return is_finite(r.loss) && all_finite(h.W, nw) && all_finite(h.b, h.num_classes);
    }
  } t{h, s, cfg, full, nw};
  return train_epochs(s, n, cfg, t, cb, user, nullptr);
}

Status head_evaluate(HeadView& h, const StoreView& s, bool use_replay, EvalResult* out, uint16_t* confusion) {
  return evaluate_store(
      s, use_replay, h.num_classes, h.max_classes,
      [&h, &s](uint32_t i, uint16_t y, float* lin, float* sum) {
        return forward_softmax(h, s.features + i * s.feature_dim, y, lin, sum);
      },
      out, confusion);
}

}  // namespace odl
ODL_NUMERICS_END
