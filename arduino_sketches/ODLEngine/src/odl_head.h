// odl_head.h - the trainable softmax head and the reservoir training store.
// Non-template code working on views of buffers that odl::Engine owns.
#ifndef ODL_HEAD_H
#define ODL_HEAD_H

#include "odl_numerics.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

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
// z (n logits) -> softmax(z) in place; returns the argmax. The cross-entropy of label y is
// (zmax - z_y) + log(sum): if given, *lin receives zmax - z_y and *sum the softmax denominator
// (>= 1), so a trainer can take one log per batch instead of one per sample (exact even when p_y
// underflows). The one softmax of every head (float, Lab 2's network, int8).
int softmax_loss(float* z, uint16_t n, uint16_t y = 0, float* lin = nullptr, float* sum = nullptr);
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
// Fills s.order with the indices of the samples a train() call uses (all of them with use_replay,
// else those of the current session), among the first `limit` slots; returns how many.
uint32_t select_samples(StoreView& s, bool use_replay, uint32_t limit = 0xFFFFFFFFu);
// The SGD settings every trainer checks the same way (batch, epochs, lr, momentum, weight decay);
// which plans and modes a trainer accepts is its own check.
bool sgd_config_ok(const TrainConfig& cfg);
// select_samples and the checks every trainer makes on them, in this order: no classes or no
// selected sample -> kErrNoSamples, a selected label >= num_classes -> kErrBadLabel.
Status select_training_samples(StoreView& s, bool use_replay, uint16_t num_classes, uint32_t* n,
                               uint32_t limit = 0xFFFFFFFFu);
// One epoch's Fisher-Yates shuffle of s.order[0..n) with the store's xorshift32: the one data
// order of every trainer (head, backbone plans, Lab 2's network; odlkit's numpy twins replay it).
void store_shuffle(StoreView& s, uint32_t n);

// Mini-batch SGD on softmax cross-entropy (mean over the batch):
//   g = dL/dW + weight_decay * W;  v = momentum * v - lr * g;  W += v   (same for b, no decay)
// Momentum starts at zero in every train() call. Bias-only mode leaves W untouched.
Status head_train(HeadView& h, StoreView& s, const TrainConfig& cfg, EpochCallback cb, void* user);
Status head_evaluate(HeadView& h, const StoreView& s, bool use_replay, EvalResult* out, uint16_t* confusion);

// The epoch / mini-batch loop of every trainer (head, backbone plans, Lab 2's network, int8 head):
// per epoch the store's shuffle (store_shuffle), then mini-batches of s.order[0..n). The trainer t:
//   void begin_batch()                               zeroes the batch's gradient sums
//   int sample(uint32_t slot, float* lin, float* sum) forward and backward of one sample: its argmax
//                                                    and loss parts (loss = lin + log(sum))
//   void step(float inv_m)                           the update (inv_m = 1 / the batch's size)
//   bool epoch_done(const EpochResult& r)            after each epoch; false: stop with kErrDiverged
// Loss and accuracy of an epoch are those before each batch's update; *steps counts mini-batches.
template <class Trainer>
Status train_epochs(StoreView& s, uint32_t n, const TrainConfig& cfg, Trainer& t, EpochCallback cb, void* user,
                    uint32_t* steps) {
  for (uint16_t epoch = 1; epoch <= cfg.epochs; ++epoch) {
    if (cfg.shuffle) store_shuffle(s, n);
    float loss_lin = 0.0f, loss_log = 0.0f, prod = 1.0f;
    uint32_t correct = 0;
    for (uint32_t start = 0; start < n; start += cfg.batch_size) {
      const uint32_t end = start + cfg.batch_size < n ? start + cfg.batch_size : n;
      t.begin_batch();
      for (uint32_t k = start; k < end; ++k) {
        const uint32_t idx = s.order[k];
        float lin = 0.0f, sum = 1.0f;
        const int pred = t.sample(idx, &lin, &sum);
        loss_lin += lin;
        prod *= sum;  // each sum is in [1, num_classes]: flush to a log before overflow
        if (prod > 1e30f) {
          loss_log += logf(prod);
          prod = 1.0f;
        }
        if (pred == s.labels[idx]) correct++;
      }
      t.step(1.0f / (float)(end - start));
      if (steps) ++*steps;
    }
    EpochResult r;
    r.epoch = epoch;
    r.loss = (loss_lin + loss_log + logf(prod)) / (float)n;
    r.accuracy = (float)correct / (float)n;
    if (!t.epoch_done(r)) return kErrDiverged;
    if (cb && !cb(r, user)) break;
  }
  return kOk;
}

// The evaluation loop of every engine: mean cross-entropy, accuracy and confusion counts over the
// stored samples (all, or the current session's), with the model as a parameter:
// forward(slot, label, &lin, &sum) returns the argmax of the sample in store slot `slot`
// (loss = lin + log(sum), as in training).
template <class Forward>
Status evaluate_store(const StoreView& s, bool use_replay, uint16_t num_classes, uint16_t max_classes, Forward forward,
                      EvalResult* out, uint16_t* confusion) {
  if (!out || !confusion) return kErrBadArgument;
  memset(confusion, 0, sizeof(uint16_t) * max_classes * max_classes);
  out->n = 0;
  out->correct = 0;
  out->accuracy = 0.0f;
  out->loss = 0.0f;
  out->num_classes = num_classes;
  out->stride = max_classes;
  out->confusion = confusion;
  if (num_classes == 0) return kErrNoSamples;
  float loss = 0.0f;
  for (uint32_t i = 0; i < s.count; ++i) {
    if (!use_replay && s.sessions[i] != s.session) continue;
    const uint16_t y = s.labels[i];
    if (y >= num_classes) return kErrBadLabel;
    float lin = 0.0f, sum = 1.0f;
    const int pred = forward(i, y, &lin, &sum);
    loss += lin + logf(sum);
    out->n++;
    if (pred == y) out->correct++;
    uint16_t& cell = confusion[(uint32_t)y * max_classes + pred];
    if (cell < 0xFFFF) cell++;
  }
  if (out->n == 0) return kErrNoSamples;
  out->accuracy = (float)out->correct / (float)out->n;
  out->loss = loss / (float)out->n;
  return kOk;
}

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_HEAD_H
