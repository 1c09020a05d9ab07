// odl_mlp.cpp - see odl_mlp.h.
#include "odl_mlp.h"
#include "odl_numerics.h"

#include <math.h>
#include <string.h>

#include "odl_blob.h"
#include "odl_kernels.h"
#include "odl_rng.h"

ODL_NUMERICS_BEGIN
namespace odl {

namespace {

void copy_name(char* dst, const char* src) {
  memset(dst, 0, kClassNameBytes);
  if (!src) return;
  for (uint16_t i = 0; i + 1 < kClassNameBytes && src[i]; ++i) dst[i] = src[i];
}

void put_u16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
}
uint16_t get_u16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
// float arrays travel as little-endian IEEE-754 (every supported target is little-endian)
uint8_t* put_floats(uint8_t* p, const float* v, uint32_t n) {
  memcpy(p, v, 4u * n);
  return p + 4u * n;
}
const uint8_t* get_floats(const uint8_t* p, float* v, uint32_t n) {
  memcpy(v, p, 4u * n);
  return p + 4u * n;
}
bool floats_finite(const uint8_t* p, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    float f;
    memcpy(&f, p + 4u * i, 4);
    if (!is_finite(f)) return false;
  }
  return true;
}

}  // namespace

void mlp_reset_norm(MlpView& m) {
  m.norm_n = 0;
  for (uint16_t i = 0; i < m.input_dim; ++i) {
    m.norm_mean[i] = 0.0f;
    m.norm_m2[i] = 0.0f;
    m.inv_std[i] = 1.0f;
  }
}

void mlp_init(MlpView& m, const char* const* names, uint16_t n, uint32_t seed) {
  const uint32_t D = m.input_dim, H = m.hidden, C = m.max_classes;
  uint32_t state = rng_seed_weights(seed);
  const float limit = sqrtf(6.0f / (float)D);
  for (uint32_t i = 0; i < D * H; ++i) {
    const float u = (float)(xorshift32(&state) >> 8) * 5.9604644775390625e-08f;  // [0, 1), 24 bits
    m.W1[i] = (u * 2.0f - 1.0f) * limit;
  }
  memset(m.b1, 0, sizeof(float) * H);
  memset(m.W2, 0, sizeof(float) * H * C);
  memset(m.b2, 0, sizeof(float) * C);
  memset(m.vW1, 0, sizeof(float) * D * H);
  memset(m.vb1, 0, sizeof(float) * H);
  memset(m.vW2, 0, sizeof(float) * H * C);
  memset(m.vb2, 0, sizeof(float) * C);
  memset(m.names, 0, (size_t)kClassNameBytes * C);
  m.num_classes = n > m.max_classes ? m.max_classes : n;
  for (uint16_t c = 0; c < m.num_classes; ++c) copy_name(m.names[c], names ? names[c] : nullptr);
  mlp_reset_norm(m);
}

void mlp_update_norm(MlpView& m, const float* x) {
  m.norm_n++;
  const float n = (float)m.norm_n;
  for (uint16_t i = 0; i < m.input_dim; ++i) {
    const float d = x[i] - m.norm_mean[i];
    m.norm_mean[i] += d / n;
    m.norm_m2[i] += d * (x[i] - m.norm_mean[i]);
  }
}

void mlp_freeze_norm(MlpView& m) {
  for (uint16_t i = 0; i < m.input_dim; ++i)
    m.inv_std[i] = m.norm_n ? 1.0f / sqrtf(m.norm_m2[i] / (float)m.norm_n + kNormEps) : 1.0f;
}

int mlp_add_class(MlpView& m, const char* name) {
  if (!name || !name[0]) return kErrBadArgument;
  char tmp[kClassNameBytes];
  copy_name(tmp, name);
  for (uint16_t c = 0; c < m.num_classes; ++c)
    if (memcmp(tmp, m.names[c], kClassNameBytes) == 0) return kErrDuplicateClass;
  if (m.num_classes >= m.max_classes) return kErrTooManyClasses;
  const uint16_t C = m.num_classes, C1 = (uint16_t)(C + 1);
  // W2 [H][C] -> [H][C + 1], from the last row down so nothing is overwritten before it moves
  for (int32_t i = (int32_t)m.hidden - 1; i >= 0; --i) {
    memmove(m.W2 + (uint32_t)i * C1, m.W2 + (uint32_t)i * C, sizeof(float) * C);
    m.W2[(uint32_t)i * C1 + C] = 0.0f;
  }
  memset(m.vW2, 0, sizeof(float) * m.hidden * C1);
  m.b2[C] = 0.0f;
  m.vb2[C] = 0.0f;
  memcpy(m.names[C], tmp, kClassNameBytes);
  m.num_classes = C1;
  return C;
}

Status mlp_remove_last_class(MlpView& m, const StoreView& s) {
  if (m.num_classes == 0) return kErrBadArgument;
  const uint16_t C = m.num_classes, c = (uint16_t)(C - 1);
  for (uint32_t i = 0; i < s.count; ++i)
    if (s.labels[i] == c) return kErrBadLabel;
  for (uint16_t i = 0; i < m.hidden; ++i) memmove(m.W2 + (uint32_t)i * c, m.W2 + (uint32_t)i * C, sizeof(float) * c);
  memset(m.names[c], 0, kClassNameBytes);
  m.b2[c] = 0.0f;
  m.num_classes = c;
  return kOk;
}

int mlp_forward(MlpView& m, const float* x, uint16_t y, float* lin, float* sum_out) {
  const uint16_t D = m.input_dim, H = m.hidden, C = m.num_classes;
  for (uint16_t i = 0; i < D; ++i) m.z[i] = (x[i] - m.norm_mean[i]) * m.inv_std[i];
  dense(m.z, D, m.W1, m.b1, H, m.h);
  relu_inplace(m.h, H);
  dense(m.h, H, m.W2, m.b2, C, m.probs);
  return softmax_loss(m.probs, C, y, lin, sum_out);
}

Status mlp_predict(MlpView& m, const float* x, Prediction* out) {
  if (!x || !out) return kErrBadArgument;
  if (m.num_classes == 0) return kErrNoSamples;
  if (!all_finite(x, m.input_dim)) return kErrNonFinite;
  const int best = mlp_forward(m, x);
  out->label = (int16_t)best;
  out->confidence = m.probs[best];
  out->probs = m.probs;
  out->num_classes = m.num_classes;
  return kOk;
}

Status mlp_train(MlpView& m, StoreView& s, const TrainConfig& cfg, EpochCallback cb, void* user, ClockFn clock,
                 uint32_t* last_step_us) {
  if (!sgd_config_ok(cfg) || cfg.mode != kTrainFull || (cfg.plan != kPlanHead && cfg.plan != kPlanAll))
    return kErrBadArgument;
  uint32_t n = 0;
  const Status sel = select_training_samples(s, cfg.use_replay, m.num_classes, &n);
  if (sel != kOk) return sel;
  const bool all = cfg.plan == kPlanAll;  // kPlanHead: the hidden layer stays as initialized
  const uint16_t D = m.input_dim, H = m.hidden, C = m.num_classes;
  const uint32_t n1 = (uint32_t)D * H, n2 = (uint32_t)H * C;
  mlp_freeze_norm(m);
  memset(m.vW1, 0, sizeof(float) * n1);
  memset(m.vb1, 0, sizeof(float) * H);
  memset(m.vW2, 0, sizeof(float) * n2);
  memset(m.vb2, 0, sizeof(float) * C);
  struct Trainer {
    MlpView& m;
    const StoreView& s;
    const TrainConfig& cfg;
    bool all;
    uint32_t n1, n2;
    ClockFn clock;
    uint32_t* last_step_us;
    uint32_t steps, t_start;
    void begin_batch() {
      memset(m.gW2, 0, sizeof(float) * n2);
      memset(m.gb2, 0, sizeof(float) * m.num_classes);
      if (all) {
        memset(m.gW1, 0, sizeof(float) * n1);
        memset(m.gb1, 0, sizeof(float) * m.hidden);
      }
    }
    int sample(uint32_t idx, float* lin, float* sum) {
      const uint16_t y = s.labels[idx], D = m.input_dim, H = m.hidden, C = m.num_classes;
      const int pred = mlp_forward(m, s.features + idx * s.feature_dim, y, lin, sum);
      m.probs[y] -= 1.0f;  // dL/dlogits = p - onehot
      dense_backward(m.h, H, m.W2, C, m.probs, m.gW2, m.gb2, all ? m.dh : nullptr);
      if (all) {
        relu_backward_inplace(m.h, m.dh, H);
        dense_backward(m.z, D, m.W1, H, m.dh, m.gW1, m.gb1, nullptr);
      }
      return pred;
    }
    void step(float inv_m) {
      sgd_momentum(m.W2, m.vW2, m.gW2, n2, inv_m, cfg.weight_decay, cfg.momentum, cfg.lr);
      sgd_momentum(m.b2, m.vb2, m.gb2, m.num_classes, inv_m, 0.0f, cfg.momentum, cfg.lr);
      if (all) {
        sgd_momentum(m.W1, m.vW1, m.gW1, n1, inv_m, cfg.weight_decay, cfg.momentum, cfg.lr);
        sgd_momentum(m.b1, m.vb1, m.gb1, m.hidden, inv_m, 0.0f, cfg.momentum, cfg.lr);
      }
    }
    bool epoch_done(const EpochResult& r) {
      if (!is_finite(r.loss) || !all_finite(m.W1, n1) || !all_finite(m.W2, n2) || !all_finite(m.b1, m.hidden) ||
          !all_finite(m.b2, m.num_classes))
        return false;  // the caller restores the weights from before the call
      if (clock && last_step_us && steps) *last_step_us = (clock() - t_start) / steps;
      return true;
    }
  } t{m, s, cfg, all, n1, n2, clock, last_step_us, 0, clock ? clock() : 0};
  return train_epochs(s, n, cfg, t, cb, user, &t.steps);
}

Status mlp_evaluate(MlpView& m, const StoreView& s, bool use_replay, EvalResult* out, uint16_t* confusion) {
  if (out && confusion && m.num_classes) mlp_freeze_norm(m);
  return evaluate_store(
      s, use_replay, m.num_classes, m.max_classes,
      [&m, &s](uint32_t i, uint16_t y, float* lin, float* sum) {
        return mlp_forward(m, s.features + i * s.feature_dim, y, lin, sum);
      },
      out, confusion);
}

uint32_t mlp_blob_size(const MlpView& m) { return mlp_blob_size_for(m.num_classes, m.input_dim, m.hidden); }

Status mlp_blob_encode(const MlpView& m, uint8_t* out, uint32_t capacity, uint32_t* written) {
  const uint32_t size = mlp_blob_size(m);
  if (!out || capacity < size) return kErrBufferTooSmall;
  const uint32_t C = m.num_classes, D = m.input_dim, H = m.hidden;
  memcpy(out, "ODLW", 4);
  put_u16(out + 4, kMlpBlobVersion);
  put_u16(out + 6, kBlobDtypeFloat32);
  put_u16(out + 8, (uint16_t)C);
  put_u16(out + 10, (uint16_t)D);
  put_u32(out + 12, size - 20u);
  put_u16(out + 16, (uint16_t)H);
  put_u16(out + 18, 0);
  put_u32(out + 20, m.norm_n);
  uint8_t* p = out + 24;
  for (uint32_t c = 0; c < C; ++c, p += kClassNameBytes) memcpy(p, m.names[c], kClassNameBytes);
  p = put_floats(p, m.norm_mean, D);
  p = put_floats(p, m.norm_m2, D);
  p = put_floats(p, m.W1, D * H);
  p = put_floats(p, m.b1, H);
  p = put_floats(p, m.W2, H * C);
  p = put_floats(p, m.b2, C);
  put_u32(p, crc32(out, size - 4));
  if (written) *written = size;
  return kOk;
}

Status mlp_blob_decode(MlpView& m, const uint8_t* data, uint32_t len) {
  if (!data || len < 28) return kErrBlobSize;
  if (memcmp(data, "ODLW", 4) != 0) return kErrBlobMagic;
  if (get_u16(data + 4) != kMlpBlobVersion || get_u16(data + 6) != kBlobDtypeFloat32) return kErrBlobVersion;
  const uint32_t C = get_u16(data + 8), D = get_u16(data + 10), H = get_u16(data + 16);
  if (len != mlp_blob_size_for(C, D, H) || get_u32(data + 12) != len - 20u) return kErrBlobSize;
  if (crc32(data, len - 4) != get_u32(data + len - 4)) return kErrBlobCrc;
  if (D != m.input_dim || H != m.hidden || C > m.max_classes || C == 0) return kErrBlobShape;
  const uint8_t* p = data + 24 + C * kClassNameBytes;
  const uint32_t floats = 2u * D + D * H + H + H * C + C;
  if (!floats_finite(p, floats)) return kErrNonFinite;
  for (uint32_t i = 0; i < D; ++i) {
    float v;
    memcpy(&v, p + 4u * (D + i), 4);
    if (v < 0.0f) return kErrBlobShape;  // a sum of squares (M2) is never negative
  }
  for (uint32_t c = 0; c < C; ++c) {
    const uint8_t* nm = data + 24 + c * kClassNameBytes;
    if (nm[0] == 0 || nm[kClassNameBytes - 1] != 0) return kErrBlobShape;  // every class needs a name
  }
  // valid: apply
  m.num_classes = (uint16_t)C;
  m.norm_n = get_u32(data + 20);
  memset(m.names, 0, (size_t)kClassNameBytes * m.max_classes);
  for (uint32_t c = 0; c < C; ++c) memcpy(m.names[c], data + 24 + c * kClassNameBytes, kClassNameBytes);
  p = get_floats(p, m.norm_mean, D);
  p = get_floats(p, m.norm_m2, D);
  p = get_floats(p, m.W1, D * H);
  p = get_floats(p, m.b1, H);
  p = get_floats(p, m.W2, H * C);
  get_floats(p, m.b2, C);
  memset(m.vW1, 0, sizeof(float) * D * H);
  memset(m.vb1, 0, sizeof(float) * H);
  memset(m.vW2, 0, sizeof(float) * H * m.max_classes);
  memset(m.vb2, 0, sizeof(float) * m.max_classes);
  mlp_freeze_norm(m);
  return kOk;
}

}  // namespace odl
ODL_NUMERICS_END
