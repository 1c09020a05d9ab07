// Per-layer profile of the training kernels for benchmarks/device_plans.py, run under qemu with
// -icount shift=0: for every layer of the backbone in odl_model_data.h (its real weights, on a
// deterministic input), the instructions of its forward kernel, of its backward kernel for the
// bias gradient alone, bias + data gradient (what bias-only needs above the first layer) and
// bias + kernel gradient (what a sparse update adds), of the ReLU mask's backward and of the SGD
// update of its kernel. One call each, counted by the CMSDK timer (resolution 40 instructions).
#include <stdio.h>
#include <string.h>

#include <ODLEngine.h>

#include "odl_model_data.h"
#include "qemu/harness.h"

static float g_x[ODL_ARENA_FLOATS], g_y[ODL_ARENA_FLOATS], g_dy[ODL_ARENA_FLOATS], g_dx[ODL_ARENA_FLOATS];
static float g_gw[8192], g_v[8192], g_gb[256];

static uint32_t ticks_to_instructions(uint32_t t) { return t * kInstructionsPerTick; }

int main() {
  print_calibration();
  uint32_t s = 12345u;
  for (uint32_t i = 0; i < ODL_ARENA_FLOATS; ++i) {  // values in [-1, 1): some ReLU outputs are zero
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    g_x[i] = (float)(int32_t)(s >> 8) / 8388608.0f - 1.0f;
    g_dy[i] = (float)(int32_t)(s & 0xFFFFu) / 32768.0f - 1.0f;
  }
  const odl::ModelSpec& m = kOdlModel;
  uint16_t T = m.input_len, C = m.input_channels;
  for (uint16_t l = 0; l < m.num_layers; ++l) {
    const odl::LayerSpec& L = m.layers[l];
    uint16_t To = 0, Co = 0;
    if (!odl::layer_out_shape(L, T, C, &To, &Co)) {
      printf("ERROR layer %u\n", l);
      return 1;
    }
    uint32_t fwd = 0, gb = 0, gbdx = 0, gbgw = 0, relu = 0, sgd = 0, nk = 0;
    counter_start();
    switch (L.type) {
      case odl::kConv1D: odl::conv1d_valid(g_x, T, C, L.weights, L.bias, L.kernel, Co, g_y); break;
      case odl::kDepthwiseConv1D: odl::depthwise_conv1d_valid(g_x, T, C, L.weights, L.bias, L.kernel, g_y); break;
      case odl::kDense: odl::dense(g_x, C, L.weights, L.bias, Co, g_y); break;
      case odl::kMaxPool1D: odl::maxpool1d(g_x, T, C, L.kernel, g_y); break;
      case odl::kGlobalAvgPool1D: odl::global_avg_pool1d(g_x, T, C, g_y); break;
      default: break;
    }
    fwd = ticks_to_instructions(counter_ticks());
    for (int what = 0; what < 3; ++what) {
      float* gx = what == 1 ? g_dx : nullptr;
      float* gw = what == 2 ? g_gw : nullptr;
      memset(g_gw, 0, sizeof(g_gw));
      counter_start();
      switch (L.type) {
        case odl::kConv1D: odl::conv1d_backward(g_x, T, C, L.weights, L.kernel, Co, g_dy, gw, g_gb, gx); break;
        case odl::kDepthwiseConv1D:
          odl::depthwise_conv1d_backward(g_x, T, C, L.weights, L.kernel, g_dy, gw, g_gb, gx);
          break;
        case odl::kDense: odl::dense_backward(g_x, C, L.weights, Co, g_dy, gw, g_gb, gx); break;
        default: break;
      }
      const uint32_t n = ticks_to_instructions(counter_ticks());
      if (what == 0) gb = n;
      if (what == 1) gbdx = n;
      if (what == 2) gbgw = n;
    }
    if (L.type == odl::kConv1D) nk = (uint32_t)L.kernel * C * Co;
    if (L.type == odl::kDepthwiseConv1D) nk = (uint32_t)L.kernel * C;
    if (L.type == odl::kDense) nk = (uint32_t)C * Co;
    if (L.activation == odl::kActRelu || L.type == odl::kReLU) {
      counter_start();
      odl::relu_backward_inplace(g_x, g_dy, (uint32_t)To * Co);
      relu = ticks_to_instructions(counter_ticks());
    }
    if (nk) {
      memset(g_v, 0, sizeof(g_v));
      counter_start();
      odl::sgd_momentum(g_gw, g_v, g_dy, nk, 0.125f, 1e-3f, 0.9f, 1e-3f);
      sgd = ticks_to_instructions(counter_ticks());
    }
    printf("layer %u type %u in %u %u out %u %u forward %lu gb %lu gb_dx %lu gb_gw %lu relu_backward %lu sgd %lu\n", l,
           (unsigned)L.type, T, C, To, Co, (unsigned long)fwd, (unsigned long)gb, (unsigned long)gbdx,
           (unsigned long)gbgw, (unsigned long)relu, (unsigned long)sgd);
    T = To;
    C = Co;
  }
  printf("done\n");
  return 0;
}
