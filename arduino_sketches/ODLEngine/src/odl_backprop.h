// odl_backprop.h - training the backbone on the device: back-propagation through the exported
// layers (Dense, GlobalAveragePooling1D, Conv1D, MaxPool1D, DepthwiseConv1D, ReLU; BatchNorm is
// folded into the layer before it at export, so its beta is that layer's bias) and the update
// plans of TrainPlan (odl_types.h):
//
//   kPlanHead    the head only, on stored features (odl_head.h; nothing here runs)
//   kPlanBias    TinyTL: every backbone bias + the head
//   kPlanSparse  every backbone bias + the kernels of the last k backbone layers with weights + the head
//
// Non-template code on views of buffers that odl::Engine owns (sizes fixed at compile time):
//   - the plan buffer (PlanBytes): RAM copies of the parameters the plan updates, their
//     gradients and momentum, and the activations the plan's backward pass needs, laid out by
//     plan_configure with a bump allocator: every float buffer first (4-byte aligned), then one
//     bit buffer per layer (ReLU masks: 1 bit per output element; MaxPool: ceil(log2(pool)) bits
//     per output element for the argmax), each rounded up to whole bytes. Nothing else is kept:
//     a layer's input is stored only if its kernel is updated (dW = x^T dy); biases and dx need
//     only dy. PlanView::used is what Stats::plan_bytes reports; odlkit.tiny.memory
//     .engine_plan_memory predicts it from the Keras model, byte for byte.
//   - the backward pass's dy / dx ping-pong in the two halves of the forward arena (free while a
//     sample is back-propagated; each half holds the largest activation).
//   - the window store: backbone plans train on the raw windows, not on the stored features, so
//     the engine keeps, for the first WindowCapacity slots of its training store, the normalized
//     window ((x - mean) / std) as int16 with a fixed scale of 1/4096 (range +-8 standard
//     deviations, resolution 2.4e-4 std; 600 bytes per 50 x 6 window, half the float size).
//     Backbone plans train on the samples that have a window; after training they recompute
//     those samples' stored features with the updated backbone.
//
// Training streams one sample at a time (forward with the tape, head, backward) and accumulates
// the gradients of a mini-batch, then updates every trained tensor with SGD + momentum exactly as
// the head is updated (weight decay on kernels, not on biases). The data order, the loss and
// accuracy reported per epoch are those of head_train.
#ifndef ODL_BACKPROP_H
#define ODL_BACKPROP_H

#include "odl_numerics.h"
#include <stdint.h>

#include "odl_head.h"
#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

static const uint16_t kMaxPlanLayers = 24;         // layers of a backbone the plans can train
static const float kWindowScale = 1.0f / 4096.0f;  // int16 window store: value = q * kWindowScale
static const uint32_t kNoBuffer = 0xFFFFFFFFu;

// Where one layer's plan buffers are (byte offsets into the plan buffer, kNoBuffer if absent).
struct LayerPlan {
  uint16_t in_T, in_C, out_T, out_C;
  uint8_t update_bias, update_kernel;
  uint8_t grad_in;   // the gradient is passed on to the layer's input
  uint8_t mask;      // a ReLU mask of the output is stored (fused ReLU or a kReLU layer)
  uint8_t arg_bits;  // MaxPool: bits per output element of the stored argmax (0: none)
  uint32_t b, gb, vb, w, gw, vw, x, bits;
};

struct BackboneView {
  const ModelSpec* exported;  // the model header (weights in flash)
  ModelSpec* model;           // what the engine runs: pointers to RAM copies for updated tensors
  LayerSpec* layers;          // [max_layers] the model's layer list (RAM)
  LayerPlan* lplan;           // [max_layers]
  uint16_t max_layers;        // 0: the engine has no plan buffer (head plan only)
  float* arena;
  uint32_t arena_floats;
  uint8_t* buf;  // plan buffer (4-byte aligned)
  uint32_t capacity;
  uint32_t used;
  bool configured;
  uint8_t plan, sparse_layers;
  uint16_t first;  // earliest layer the backward pass reaches
  int16_t* windows;
  uint32_t window_capacity;
  uint32_t window_values;
};

// Binds the model: the RAM layer list points at the exported tensors, no plan configured.
Status backbone_bind(BackboneView& bb, const ModelSpec& spec);
// Back to the exported backbone (no plan, every tensor from flash).
void backbone_reset(BackboneView& bb);
// Lays out the plan's buffers and copies the tensors it updates into RAM. Configuring the plan
// already configured keeps the trained tensors; another plan starts from the exported backbone.
// kErrBadArgument: unknown plan or k out of 1..(backbone layers with weights);
// kErrPlanTooLarge: the buffers do not fit (nothing changed).
Status plan_configure(BackboneView& bb, uint8_t plan, uint8_t sparse_layers);
// Bytes plan_configure would use, without changing anything (kErrPlanTooLarge is not checked).
Status plan_bytes(const BackboneView& bb, uint8_t plan, uint8_t sparse_layers, uint32_t* bytes);
// SAVE / LOAD of a trained plan (odl_engine.h): which tensors plan (plan, k) updates, layer by
// layer (into[l].update_bias / update_kernel, into: the model's layer count of entries), without
// configuring anything; kErrBadArgument as plan_bytes. layer_kernel_floats: a layer's kernel size.
Status plan_layout(const BackboneView& bb, uint8_t plan, uint8_t sparse_layers, LayerPlan* into);
uint32_t layer_kernel_floats(const LayerSpec& L);
// Stores the normalized window of a raw window in window slot `slot` (< window_capacity).
void window_store(BackboneView& bb, uint32_t slot, const float* raw_window);
// Trains head + the configured plan's backbone tensors on the samples with a window.
// *steps: mini-batches run. On kErrDiverged the caller restores the head; the backbone is reset.
Status plan_train(BackboneView& bb, HeadView& h, StoreView& s, const TrainConfig& cfg, EpochCallback cb, void* user,
                  uint32_t* steps);
// Recomputes the stored features of the samples that have a window (after a backbone update).
Status plan_refresh_features(BackboneView& bb, StoreView& s);
// The backbone forward from a stored (int16) window; writes feature_dim floats.
Status window_features(BackboneView& bb, const int16_t* q, float* features);

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_BACKPROP_H
