// odl_types.h - plain data types shared by the engine, the generated model
// header (odl_model_data.h) and the sketches.
#ifndef ODL_TYPES_H
#define ODL_TYPES_H

#include "odl_numerics.h"
#include <stddef.h>
#include <stdint.h>

ODL_NUMERICS_BEGIN
namespace odl {

enum Status : int {
  kOk = 0,
  kErrNotBegun = -1,          // begin(model) was not called
  kErrBadArgument = -2,       // null pointer, zero size, out-of-range value
  kErrFeatureDim = -3,        // model feature_dim differs from the template FeatureDim
  kErrTooManyClasses = -4,    // more classes than MaxClasses
  kErrArenaTooSmall = -5,     // an activation does not fit half of the arena
  kErrBadModel = -6,          // layer list inconsistent (shapes, unknown layer type)
  kErrBadLabel = -7,          // label >= num_classes
  kErrNoSamples = -8,         // nothing to train / evaluate on
  kErrBufferTooSmall = -9,    // output buffer smaller than the blob
  kErrBlobMagic = -10,        // blob does not start with "ODLW"
  kErrBlobVersion = -11,      // unknown blob format version or dtype
  kErrBlobSize = -12,         // blob length inconsistent with its header
  kErrBlobCrc = -13,          // CRC32 mismatch (corrupted blob)
  kErrBlobShape = -14,        // blob feature_dim / class count does not fit this engine
  kErrStorageIo = -15,        // the storage refused an erase / write / read
  kErrStorageEmpty = -16,     // no valid slot in storage
  kErrStorageTooSmall = -17,  // record larger than a slot
  kErrDuplicateClass = -18,   // add_class with a name already in the head
  kErrNonFinite = -19,        // a NaN or infinite weight, feature or window value was refused
  kErrDiverged = -20,         // training gave a non-finite loss: the weights were restored
  kErrPlanTooLarge = -21,     // the update plan's buffers do not fit the engine's PlanBytes
  kErrNoWindows = -22,        // a backbone plan needs stored windows: the engine keeps none (WindowCapacity 0)
  kErrNoInt8 = -23            // TRAIN q=int8 on an engine built without the int8 path (Int8 false / no begin_int8)
};

// false for NaN and +-Inf (a builtin, so it holds without <cmath> and on every core).
inline bool is_finite(float v) { return __builtin_isfinite(v); }
inline bool all_finite(const float* v, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (!is_finite(v[i])) return false;
  return true;
}

// Short, stable text for a Status (for serial error replies).
const char* status_str(int status);

// Layer types of the exported backbone (values are written by odlkit.export.c_header).
enum LayerType : uint8_t {
  kConv1D = 1,           // valid padding, stride 1; W (k, in, out) Keras layout; + bias
  kDepthwiseConv1D = 2,  // valid padding, stride 1, depth multiplier 1; W (k, in, 1); + bias
  kDense = 3,            // on a (1, in) activation; W (in, out); + bias
  kReLU = 4,             // elementwise max(x, 0)
  kMaxPool1D = 5,        // pool size = stride = kernel, valid (floor)
  kGlobalAvgPool1D = 6   // mean over time -> (1, C)
};

enum Activation : uint8_t { kActNone = 0, kActRelu = 1 };

struct LayerSpec {
  uint8_t type;        // LayerType
  uint8_t activation;  // Activation fused after the layer (BN already folded)
  uint16_t kernel;     // kernel size (conv), pool size (max pool), 0 otherwise
  uint16_t in_channels;
  uint16_t out_channels;
  const float* weights;  // Keras layout, or nullptr for weightless layers
  const float* bias;     // out_channels floats, or nullptr
};

struct ModelSpec {
  uint16_t input_len;       // time steps of one window (ODL_INPUT_LEN)
  uint16_t input_channels;  // ODL_INPUT_CHANNELS
  uint16_t feature_dim;     // backbone output size (ODL_FEATURE_DIM)
  uint16_t num_classes;     // classes of the initial head (ODL_NUM_CLASSES)
  uint32_t arena_floats;    // arena needed: 2 x largest activation (ODL_ARENA_FLOATS)
  const float* input_mean;  // input_channels floats
  const float* input_std;   // input_channels floats (> 0)
  const LayerSpec* layers;
  uint16_t num_layers;
  const char* const* class_names;  // num_classes strings (<= 15 chars used)
  const float* head_weights;       // num_classes x feature_dim, row-major [class][feature]
  const float* head_bias;          // num_classes
};

enum TrainMode : uint8_t { kTrainFull = 0, kTrainBiasOnly = 1 };

// Which parameters a train() call updates (TRAIN plan=...). The head follows TrainConfig::mode
// in every plan; Lab 1's backbone plans also update backbone parameters (TinyTL / sparse update,
// odl_backprop.h); Lab 2's from-scratch network (odl_mlp.h) has no backbone and trains either its
// head on a random frozen hidden layer (kPlanHead) or both layers (kPlanAll, its sketches' default).
enum TrainPlan : uint8_t {
  kPlanHead = 0,    // the head only (Lab 1: on the stored features, the engine's original training)
  kPlanBias = 1,    // + every backbone bias (TinyTL), on the stored windows
  kPlanSparse = 2,  // + every backbone bias and the kernels of the last sparse_layers layers with weights
  kPlanAll = 3      // Lab 2: the hidden layer and the head (full backpropagation through both)
};

// The arithmetic a train() call trains (and the engine then predicts) with (TRAIN q=...).
enum Quant : uint8_t {
  kQuantFloat = 0,  // float backbone features, float head
  kQuantInt8 = 1    // the full-integer backbone's int8 features, an int8 head (odl_int8.h), head plan only
};

struct TrainConfig {
  uint16_t epochs = 10;
  uint16_t batch_size = 8;
  float lr = 0.05f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;    // L2 on W (not b): grad += weight_decay * W
  uint8_t mode = kTrainFull;    // TrainMode
  bool use_replay = true;       // false: only samples of the current session
  bool shuffle = true;          // Fisher-Yates per epoch with the engine's xorshift32
  uint8_t plan = kPlanHead;     // TrainPlan (the protocol's default on Lab 2's sketches: kPlanAll)
  uint8_t sparse_layers = 0;    // kPlanSparse: how many of the last backbone layers with weights update their kernel
  uint8_t quant = kQuantFloat;  // Quant
  bool qas = true;              // kQuantInt8: quantization-aware scaling of the gradients (false: naive int8)
};

struct EpochResult {
  uint16_t epoch;  // 1-based
  float loss;      // mean cross-entropy over the epoch (before each batch's update)
  float accuracy;  // fraction correct over the epoch (before each batch's update)
};

// Return false to stop training early.
typedef bool (*EpochCallback)(const EpochResult& r, void* user);
typedef uint32_t (*ClockFn)();

struct Prediction {
  int16_t label;       // argmax class
  float confidence;    // its probability
  const float* probs;  // num_classes probabilities (engine-owned; valid until next call)
  uint16_t num_classes;
};

struct EvalResult {
  uint32_t n;  // samples evaluated
  uint32_t correct;
  float accuracy;
  float loss;                 // mean cross-entropy
  uint16_t num_classes;       // rows/cols used in the confusion buffer
  uint16_t stride;            // row stride of the confusion buffer (= MaxClasses)
  const uint16_t* confusion;  // confusion[true * stride + pred]
};

struct Stats {
  uint32_t engine_bytes = 0;  // sizeof(Engine): all static RAM of the engine
  uint32_t arena_bytes = 0;
  uint32_t head_bytes = 0;   // W, b, momentum, gradient
  uint32_t store_bytes = 0;  // replay features + labels + bookkeeping
  uint32_t num_samples = 0;
  uint32_t samples_seen = 0;
  uint32_t last_forward_us = 0;  // backbone, via the clock callback
  uint32_t last_head_us = 0;     // head inference
  uint32_t last_train_us = 0;    // whole last train() call
  // Lab 2 (two-layer network on audio features; 0 on Lab 1's engine)
  uint32_t net_bytes = 0;    // W1, b1, W2, b2 with their momentum and gradient buffers
  uint32_t norm_bytes = 0;   // the standardizer (mean, M2, inv_std)
  uint32_t lpc_bytes = 0;    // the audio front end (resampler, frame buffers)
  uint32_t last_lpc_us = 0;  // the last LPC frame's analysis
  uint8_t plan = kPlanHead;  // TrainPlan of the last train() call (or the configured plan)
  uint8_t sparse_layers = 0;
  uint32_t plan_bytes = 0;     // RAM the plan uses in the engine's plan buffer (backbone copies, gradients,
                               // momentum, stored activations); odlkit.tiny.memory.engine_plan_memory predicts it
  uint32_t plan_capacity = 0;  // PlanBytes: the compile-time plan buffer
  uint32_t window_bytes = 0;   // the window store (int16 normalized windows for backbone plans)
  uint32_t window_capacity = 0;
  uint32_t last_steps = 0;      // SGD steps (mini-batches) of the last train() call
  uint32_t last_step_us = 0;    // last_train_us / last_steps
  uint8_t quant = kQuantFloat;  // Quant the engine predicts with (that of the last train() call)
  bool qas = false;             // the last int8 training used QAS
  uint32_t int8_bytes = 0;      // RAM of the int8 path (int8 features of the store, int8 head, its latent copy)
};

static const uint16_t kClassNameBytes = 16;  // fixed, NUL padded (blob format)

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_TYPES_H
