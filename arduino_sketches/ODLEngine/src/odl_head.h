// odl_head.h - the trainable softmax head and the reservoir training store.
// Non-template code working on views of buffers that odl::Engine owns.
#ifndef ODL_HEAD_H
#define ODL_HEAD_H

#include "odl_numerics.h"
#include <stdint.h>

#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

struct HeadView {
  uint16_t feature_dim;
  uint16_t max_classes;
  uint16_t num_classes;
  float* W;   // [max_classes][feature_dim], row-major (class-major)
  float* b;   // [max_classes]
  float* vW;  // momentum (velocity) of W
  float* vb;
  float* gW;  // batch gradient scratch
  float* gb;
  float* probs;                    // [max_classes] scratch
  char (*names)[kClassNameBytes];  // [max_classes][16], NUL padded
};

struct StoreView {
  uint16_t feature_dim;
  uint32_t capacity;
  uint32_t count;    // samples held (<= capacity)
  uint32_t seen;     // samples offered to the reservoir since clear
  uint16_t session;  // current session id (new_session() increments)
  uint32_t rng_reservoir;
  uint32_t rng_shuffle;
  float* features;  // [capacity][feature_dim]
  uint16_t* labels;
  uint16_t* sessions;
  uint16_t* order;  // index scratch for shuffling
};

// e^x for x <= 0, bit-identical on every IEEE-754 float target (see .cpp).
float exp_nonpos(float x);

// Copies the model's initial head (names, W, b); zeros the momentum.
void head_load_initial(HeadView& h, const ModelSpec& spec);
// Appends a class with a zero row; returns its index or a negative Status.
int head_add_class(HeadView& h, const char* name);
// Removes the last class if no stored sample has its label (undoes an add_class whose first
// recording failed). Returns kOk, kErrBadArgument (no class) or kErrBadLabel (it has samples).
Status head_remove_last_class(HeadView& h, const StoreView& s);
// logits = W x + b, probs = softmax(logits); returns argmax. probs -> h.probs.
int head_forward(HeadView& h, const float* x);
// The same forward for training: also writes the cross-entropy parts of label y (*lin = zmax - z_y,
// *sum = the softmax denominator; loss = lin + log(sum)), as head_train computes them.
int head_forward_loss(HeadView& h, const float* x, uint16_t y, float* lin, float* sum);
Status head_predict(HeadView& h, const float* features, Prediction* out);

// Empties the store and reseeds its two xorshift32 generators from seed.
void store_clear(StoreView& s, uint32_t seed);
// Reservoir sampling (algorithm R): the first `capacity` samples are kept,
// then sample n (1-based) replaces slot r % n if r % n < capacity.
// *slot_out (optional): the slot written, or s.capacity when the reservoir did not keep it.
Status store_add(StoreView& s, const HeadView& h, const float* features, uint16_t label, uint32_t* slot_out = nullptr);

// Mini-batch SGD on softmax cross-entropy (mean over the batch):
//   g = dL/dW + weight_decay * W;  v = momentum * v - lr * g;  W += v   (same for b, no decay)
// Momentum starts at zero in every train() call. Bias-only mode leaves W untouched.
Status head_train(HeadView& h, StoreView& s, const TrainConfig& cfg, EpochCallback cb, void* user);
Status head_evaluate(HeadView& h, const StoreView& s, bool use_replay, EvalResult* out, uint16_t* confusion);

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_HEAD_H
