// odl_mlp.h - Lab 2's network trained from scratch on the device: a standardizer learned from the
// recorded data (Welford), a hidden Dense + ReLU layer and a softmax head, trained end to end
// (backpropagation through both layers with the shared odl::dense_backward /
// odl::relu_backward_inplace kernels, SGD with momentum via odl::sgd_momentum). The numpy twin
// is odlkit.mlp.TwoLayerNet (same initialisation bit for bit, same data order, same update).
//
//   x (input_dim) -> z = (x - mean) * inv_std -> h = relu(z W1 + b1) -> p = softmax(h W2 + b2)
//   W1 [input_dim][hidden], W2 [hidden][num_classes] (Keras layouts, W2 contiguous for the
//   current class count: add_class re-lays it out in place).
//
// Non-template code on views of buffers an odl::AudioEngine owns (odl_audio_engine.h).
#ifndef ODL_MLP_H
#define ODL_MLP_H

#include "odl_numerics.h"
#include <stdint.h>

#include "odl_head.h"
#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

static const float kNormEps = 1e-6f;           // odlkit.mlp.NORM_EPS
static const uint16_t kMlpBlobVersion = 2;     // ODLW version 2 (odlkit.weights.encode_mlp)
static const uint32_t kMlpBlobExtraBytes = 8;  // u16 hidden, u16 reserved, u32 standardizer count

// The weight-init generator's state: seed ^ 0x5F3759DF (0 -> 1), odlkit.mlp.rng_seed_weights.
inline uint32_t rng_seed_weights(uint32_t seed) {
  const uint32_t s = seed ^ 0x5F3759DFu;
  return s ? s : 1u;
}

struct MlpView {
  uint16_t input_dim, hidden, max_classes, num_classes;
  float *W1, *b1, *W2, *b2;      // parameters
  float *vW1, *vb1, *vW2, *vb2;  // momentum
  float *gW1, *gb1, *gW2, *gb2;  // batch gradient sums
  float *z, *h, *dh, *probs;     // per-sample scratch: input_dim, hidden, hidden, max_classes
  char (*names)[kClassNameBytes];
  uint32_t norm_n;  // standardizer: Welford count, mean, M2; inv_std frozen by mlp_freeze_norm
  float *norm_mean, *norm_m2, *inv_std;
};

constexpr uint32_t mlp_blob_size_for(uint32_t n_classes, uint32_t input_dim, uint32_t hidden) {
  return 16u + kMlpBlobExtraBytes + n_classes * kClassNameBytes +
         4u * (2u * input_dim + input_dim * hidden + hidden + hidden * n_classes + n_classes) + 4u;
}

// W1 He-uniform from xorshift32 (rng_seed_weights(seed)), b1 / W2 / b2 / momentum zero, the
// standardizer empty, the classes of names[0..n-1].
void mlp_init(MlpView& m, const char* const* names, uint16_t n, uint32_t seed);
void mlp_reset_norm(MlpView& m);
// Adds x to the running mean / M2 (Welford, float32).
void mlp_update_norm(MlpView& m, const float* x);
// inv_std = 1 / sqrt(M2 / n + eps) (1 while n = 0): frozen until the next call.
void mlp_freeze_norm(MlpView& m);
// A class with a zero column of W2 and a zero bias; returns its index or a negative Status.
int mlp_add_class(MlpView& m, const char* name);
Status mlp_remove_last_class(MlpView& m, const StoreView& s);
// Forward of a raw input x (standardized with the frozen inv_std): probabilities in m.probs,
// returns the argmax. lin / sum as in the head (loss = lin + log(sum)).
int mlp_forward(MlpView& m, const float* x, uint16_t y = 0, float* lin = nullptr, float* sum = nullptr);
Status mlp_predict(MlpView& m, const float* x, Prediction* out);
// Mini-batch SGD with momentum on the store (cfg.layers kLayersAll or kLayersHead; mode full).
// last_step_us (optional) receives the mean time of one mini-batch step.
Status mlp_train(MlpView& m, StoreView& s, const TrainConfig& cfg, EpochCallback cb, void* user, ClockFn clock,
                 uint32_t* last_step_us);
Status mlp_evaluate(MlpView& m, const StoreView& s, bool use_replay, EvalResult* out, uint16_t* confusion);
// Version-2 ODLW blob (odlkit.weights.encode_mlp / decode_mlp); decode validates everything
// (sizes, CRC, finite values) before it changes anything.
uint32_t mlp_blob_size(const MlpView& m);
Status mlp_blob_encode(const MlpView& m, uint8_t* out, uint32_t capacity, uint32_t* written);
Status mlp_blob_decode(MlpView& m, const uint8_t* data, uint32_t len);

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_MLP_H
