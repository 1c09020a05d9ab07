// odl_int8.h - the int8 path: the full-integer backbone (odlkit.export.int8 reads it from the
// .tflite that to_tflite(..., int8=True) converts) run with the integer arithmetic of TensorFlow
// Lite Micro's reference kernels (bit for bit its features; every layer bit for bit that of
// tf.lite.Interpreter(..., OpResolverType.BUILTIN_REF) but the dense layer's rounding ties, see
// multiply_by_quantized_multiplier; tests/test_int8_training.py), and an int8
// head trained on its int8 features with or without quantization-aware scaling (QAS; Lin et al.
// 2022, textbook 12.3.2; ch02's odlkit.tiny.train(weight_quant="qas"|"naive") in numpy).
//
// The head keeps int8 weights Wq (scale s_W, per tensor, symmetric) and an int32 bias bq (scale
// s_W * s_x); the forward uses them only (int32 accumulation, one float rescale of each logit).
// Training holds, as ch02 does, a float latent copy of both in their own units (quanta of s_W and
// of s_W * s_x), its float gradient and momentum; after each step Wq = clamp(round(latent)).
// The gradients w.r.t. the int8 tensors are s_W * dL/dW and s_W s_x * dL/db; QAS divides them by
// s_W^2 and (s_W s_x)^2 (the per-tensor mismatch of |g| / |w| that makes naive int8 training
// stall), so a QAS step moves the real weights as far as a float step would.
#ifndef ODL_INT8_H
#define ODL_INT8_H

#include "odl_numerics.h"
#include <stdint.h>

#include "odl_head.h"
#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

// One int8 layer in TFLite's layouts. kConv1D (valid, stride 1): W (out, k, in); kDepthwiseConv1D:
// W (k, C); kDense: W (out, in); kMaxPool1D: pool = stride = kernel; kGlobalAvgPool1D (MEAN over
// time). The fused activation is the clamp [act_min, act_max] (ReLU: act_min = out_zero).
struct QLayerSpec {
  uint8_t type;  // LayerType
  uint16_t kernel;
  uint16_t in_channels;
  uint16_t out_channels;
  int16_t in_zero;
  int16_t out_zero;
  int16_t act_min;
  int16_t act_max;
  const int8_t* weights;      // symmetric int8 (zero point 0), per output channel scales
  const int32_t* bias;        // int32 at s_in * s_W[c]
  const int32_t* multiplier;  // QuantizeMultiplier(s_in * s_W[c] / s_out) per channel; MEAN: s_in / s_out
  const int8_t* shift;        // its exponent
};

struct QModelSpec {
  uint16_t input_len, input_channels, feature_dim;
  float input_scale;  // the normalized window in int8: q = round(x / input_scale) + input_zero
  int16_t input_zero;
  float feature_scale;  // the features (backbone output)
  int16_t feature_zero;
  uint32_t arena_bytes;  // two halves, each the largest activation
  const QLayerSpec* layers;
  uint16_t num_layers;
};

// TFLite's MultiplyByQuantizedMultiplier: round(x * m * 2^(shift - 31)) in gemmlowp's double-rounding
// form (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT), as TensorFlow Lite Micro's
// kernels compute it for every layer. (TensorFlow's own reference FULLY_CONNECTED of the tested
// release rounds once instead, (x m + 2^(30 - shift)) >> (31 - shift), and so differs by 1 on rare
// ties: tests/test_int8_training.py checks the engine against both.)
int32_t multiply_by_quantized_multiplier(int32_t x, int32_t m, int shift);

// Called after each layer with its int8 output (n values); for tests and the tape.
typedef void (*QLayerHook)(uint16_t layer, const int8_t* y, uint32_t n, void* user);

// Checks the layer list chains from (input_len, input_channels) to (1, feature_dim) within the arena.
Status qvalidate_model(const QModelSpec& spec, uint32_t arena_bytes);
// Normalized float window -> int8 input (round half away from zero, clamp to [-128, 127]).
void qquantize_input(const QModelSpec& spec, const float* x, int8_t* q);
// A raw window (time-major, as sampled) -> int8 input: normalized with the float model's mean / std
// exactly as run_backbone does ((x - mean) / std in float), then qquantize_input. The engine's
// int8 path and tests/engine/int8_cli.cpp both quantize windows with it.
void qquantize_window(const ModelSpec& fspec, const QModelSpec& spec, const float* raw, int8_t* q);
// Runs the layers on an int8 input window; writes feature_dim int8 features.
Status qrun_backbone(const QModelSpec& spec, const int8_t* input, int8_t* arena, uint32_t arena_bytes, int8_t* features,
                     QLayerHook hook = nullptr, void* user = nullptr);

// One layer of qrun_backbone on x (T, C) into y: reference = the plain loops of TensorFlow Lite
// Micro's reference kernels, otherwise the optimized kernels qrun_backbone runs (the Cortex-M4's
// DSP instructions, CMSIS-NN style; the same arithmetic in C on the host): bit-identical outputs.
Status qlayer_forward(const QLayerSpec& L, const int8_t* x, uint16_t T, uint16_t C, int8_t* y, bool reference);

// The int8 head on int8 features (x_q, scale x_scale, zero x_zero).
struct QHeadView {
  uint16_t feature_dim, max_classes, num_classes;
  int8_t* Wq;      // [max_classes][feature_dim] class-major
  int32_t* bq;     // [max_classes]
  float* latW;     // training: latent Wq (quanta of s_W)
  float* latb;     // latent bq (quanta of s_W * s_x)
  float *vW, *vb;  // momentum
  float *gW, *gb;  // batch gradient sums (dL/dW, dL/db of the real weights)
  float* probs;
  float* xr;  // [feature_dim] scratch: the real features s_x (x_q - z_x)
  float w_scale, x_scale;
  int16_t x_zero;
};

// Quantizes a float head (W class-major, b) into h: s_W = max|W| / 127 (a zero head: Glorot-uniform's
// bound sqrt(6 / (feature_dim + num_classes)) / 127), bq at s_W * x_scale.
void qhead_quantize(QHeadView& h, const float* W, const float* b, uint16_t num_classes);
// The head's class count follows the float head's (ADDCLASS / removal): new rows start at zero
// (int8 and latent), as the float head's do; s_W stays.
void qhead_resize(QHeadView& h, uint16_t num_classes);
// softmax(s_W s_x (Wq (x_q - z_x) + bq)) into h.probs; returns the argmax (lin / sum as head_forward_loss).
int qhead_forward(QHeadView& h, const int8_t* x, uint16_t y = 0, float* lin = nullptr, float* sum = nullptr);
// Mini-batch SGD with momentum (TrainConfig's epochs, batch, lr, momentum; weight decay on the
// latent kernel) on the int8 features qfeatures[slot][feature_dim] of the store's samples, in the
// store's shuffle order; qas: scale the gradients (QAS) or apply them as they are (naive int8).
Status qhead_train(QHeadView& h, StoreView& s, const int8_t* qfeatures, const TrainConfig& cfg, bool qas,
                   EpochCallback cb, void* user, uint32_t* steps);
Status qhead_evaluate(QHeadView& h, const StoreView& s, const int8_t* qfeatures, bool use_replay, EvalResult* out,
                      uint16_t* confusion);

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_INT8_H
