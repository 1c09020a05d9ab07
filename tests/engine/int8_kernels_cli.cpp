// The optimized int8 forward kernels (odl_int8.cpp, qrun_backbone's) against the reference
// kernels (qlayer_forward(..., reference = true)), bit for bit, for tests/test_int8_kernels.py
// and benchmarks/device_int8_forward.py; built for the host and, with the board's flags, for
// qemu (the Cortex-M4's DSP path). With int8_windows.h (real windows, int8 and float) on the
// include path, also odl_int8_model_data.h (the int8 backbone) and odl_model_data.h (the float one):
//   random layers: conv / dense / depthwise / maxpool with random shapes (channel counts not multiples of
//     4 included), zero points, multipliers, shifts, biases and clamps; requantization edge cases
//     (rounding ties of both signs, the largest shifts) through 1 x 1 dense layers;
//   the real backbone (with the headers): every layer's output of both on every window;
//   instructions (qemu; 0 on the host): float forward, int8 reference and optimized per window
//   and per layer.
#include <stdio.h>
#include <string.h>

#include <ODLEngine.h>
#include "odl_int8.h"

#if __has_include("int8_windows.h")
#define INT8_KERNELS_REAL 1
#include "int8_windows.h"
#include "odl_int8_model_data.h"
#include "odl_model_data.h"
#endif
#include "qemu/harness.h"

static uint32_t g_rng = 2463534242u;
static uint32_t next_u32() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}
static int32_t uniform(int32_t lo, int32_t hi) { return lo + (int32_t)(next_u32() % (uint32_t)(hi - lo + 1)); }

static int8_t g_w[16384], g_x[4096], g_ref[4096], g_fast[4096];
static int32_t g_bias[256], g_mult[256];
static int8_t g_shift[256];
static uint32_t g_hash = 2166136261u;
static void hash_bytes(const int8_t* p, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) g_hash = (g_hash ^ (uint8_t)p[i]) * 16777619u;
}

// Runs L on x (T, C) with both kernels; returns the number of differing output bytes.
static uint32_t compare(const odl::QLayerSpec& L, uint16_t T, uint16_t C, uint32_t n_out) {
  memset(g_ref, 0x55, n_out);
  memset(g_fast, 0x2a, n_out);
  if (odl::qlayer_forward(L, g_x, T, C, g_ref, true) != odl::kOk ||
      odl::qlayer_forward(L, g_x, T, C, g_fast, false) != odl::kOk) {
    printf("ERROR qlayer_forward type %u\n", L.type);
    return n_out;
  }
  hash_bytes(g_fast, n_out);
  uint32_t bad = 0;
  for (uint32_t i = 0; i < n_out; ++i) bad += g_ref[i] != g_fast[i];
  return bad;
}

static void random_layers(uint32_t cases) {
  uint32_t bad = 0, outputs = 0;
  for (uint32_t c = 0; c < cases; ++c) {
    odl::QLayerSpec L;
    memset(&L, 0, sizeof(L));
    const int kind = (int)(c % 4);  // conv, dense, depthwise, maxpool
    L.type = kind == 0 ? odl::kConv1D : kind == 1 ? odl::kDense : kind == 2 ? odl::kDepthwiseConv1D : odl::kMaxPool1D;
    L.kernel = kind == 1 ? 1 : (uint16_t)uniform(1, kind == 3 ? 4 : 5);
    L.in_channels = (uint16_t)(kind == 1 ? uniform(1, 130) : uniform(1, kind >= 2 ? 90 : 40));
    L.out_channels = kind >= 2 ? L.in_channels : (uint16_t)uniform(1, 21);
    const uint16_t T = kind == 1 ? 1 : (uint16_t)(L.kernel + uniform(0, 9));
    L.in_zero = (int16_t)uniform(-128, 127);
    L.out_zero = (int16_t)uniform(-128, 127);
    const uint32_t clamp = next_u32() % 3u;  // none, ReLU (act_min = out_zero), a random range
    L.act_min = clamp == 1 ? L.out_zero : -128;
    L.act_max = 127;
    if (clamp == 2) {
      L.act_min = (int16_t)uniform(-128, 0);
      L.act_max = (int16_t)uniform(0, 127);
    }
    uint32_t nw = (uint32_t)L.out_channels * L.kernel * L.in_channels;  // conv, dense
    if (kind == 2) nw = (uint32_t)L.kernel * L.in_channels;
    if (kind == 3) nw = 0;
    for (uint32_t i = 0; i < nw; ++i) g_w[i] = (int8_t)uniform(-127, 127);
    for (uint32_t i = 0; i < (uint32_t)T * L.in_channels; ++i) g_x[i] = (int8_t)uniform(-128, 127);
    for (uint16_t o = 0; o < L.out_channels; ++o) {
      g_bias[o] = uniform(-300000, 300000);
      g_mult[o] = (int32_t)(0x40000000u + (next_u32() & 0x3FFFFFFFu));  // [2^30, 2^31): QuantizeMultiplier's range
      g_shift[o] = (int8_t)uniform(-14, 1);
    }
    L.weights = kind == 3 ? nullptr : g_w;
    L.bias = g_bias;
    L.multiplier = g_mult;
    L.shift = g_shift;
    const uint16_t To = kind == 1 ? 1 : kind == 3 ? (uint16_t)(T / L.kernel) : (uint16_t)(T - L.kernel + 1);
    const uint32_t n_out = (uint32_t)To * L.out_channels;
    bad += compare(L, T, L.in_channels, n_out);
    outputs += n_out;
  }
  printf("random layers %lu outputs %lu mismatches %lu\n", (unsigned long)cases, (unsigned long)outputs,
         (unsigned long)bad);
}

// 1 x 1 dense layers, x = 0 and in_zero = 0: the accumulator is the bias, so these are
// requantize(bias, m, shift) against multiply_by_quantized_multiplier at chosen points.
static void requantize_edges() {
  uint32_t bad = 0, n = 0;
  odl::QLayerSpec L;
  memset(&L, 0, sizeof(L));
  L.type = odl::kDense;
  L.in_channels = 1;
  L.out_channels = 1;
  L.act_min = -128;
  L.act_max = 127;
  g_w[0] = 1;
  g_x[0] = 0;
  L.weights = g_w;
  L.bias = g_bias;
  L.multiplier = g_mult;
  L.shift = g_shift;
  const int32_t mults[] = {0x40000000, 0x40000001, 0x7FFFFFFF, 0x5A827999, 0x60000000};
  for (int32_t m : mults)
    for (int s = -31; s <= 7; ++s)
      for (int32_t b = -300; b <= 300; ++b) {  // ties: m = 2^30 and odd b at shift 0, +-(2k+1) 2^(r-1)
        g_mult[0] = m;
        g_shift[0] = (int8_t)s;
        g_bias[0] = s < 0 ? b * (int32_t)(1u << (-s < 22 ? -s : 22)) / 2 + (b & 1) : b;
        bad += compare(L, 1, 1, 1);
        ++n;
      }
  for (uint32_t i = 0; i < 20000; ++i) {  // full-range accumulators
    g_mult[0] = (int32_t)(next_u32() >> 1);
    g_shift[0] = (int8_t)uniform(-31, 8);
    g_bias[0] = (int32_t)next_u32();
    bad += compare(L, 1, 1, 1);
    ++n;
  }
  printf("requantize cases %lu mismatches %lu\n", (unsigned long)n, (unsigned long)bad);
}

#ifdef INT8_KERNELS_REAL
static int8_t g_arena[2][4096];
static float g_farena[ODL_ARENA_FLOATS];

static void real_backbone() {
  const odl::QModelSpec& q = kOdlQModel;
  uint32_t bad = 0, outputs = 0;
  uint32_t ref_ticks = 0, fast_ticks = 0, float_ticks = 0;
  uint32_t layer_ref[32] = {0}, layer_fast[32] = {0};
  int8_t feat[256];
  float ffeat[256];
  for (uint32_t w = 0; w < kInt8WindowCount; ++w) {
    // the chain with the reference kernels, layer by layer, against the optimized one
    memcpy(g_arena[0], kInt8Windows[w], (uint32_t)q.input_len * q.input_channels);
    memcpy(g_x, kInt8Windows[w], (uint32_t)q.input_len * q.input_channels);
    uint16_t T = q.input_len, C = q.input_channels;
    int8_t* cur = g_arena[0];
    int8_t* curf = g_x;
    for (uint16_t l = 0; l < q.num_layers; ++l) {
      const odl::QLayerSpec& L = q.layers[l];
      uint16_t To = T, Co = C;
      if (L.type == odl::kConv1D || L.type == odl::kDepthwiseConv1D) To = (uint16_t)(T - L.kernel + 1);
      if (L.type == odl::kMaxPool1D) To = (uint16_t)(T / L.kernel);
      if (L.type == odl::kDense || L.type == odl::kGlobalAvgPool1D) To = 1;
      if (L.type == odl::kConv1D || L.type == odl::kDense) Co = L.out_channels;
      int8_t* out = cur == g_arena[0] ? g_arena[1] : g_arena[0];
      int8_t* outf = curf == g_x ? g_fast : g_x;
      counter_start();
      odl::qlayer_forward(L, cur, T, C, out, true);
      layer_ref[l] += counter_ticks();
      counter_start();
      odl::qlayer_forward(L, curf, T, C, outf, false);
      layer_fast[l] += counter_ticks();
      const uint32_t n = (uint32_t)To * Co;
      for (uint32_t i = 0; i < n; ++i) bad += out[i] != outf[i];
      outputs += n;
      hash_bytes(outf, n);
      cur = out;
      curf = outf;
      T = To;
      C = Co;
    }
    int8_t ref_feat[256];
    memcpy(ref_feat, cur, q.feature_dim);
    counter_start();
    odl::qrun_backbone(q, kInt8Windows[w], g_arena[0], sizeof(g_arena[0]), feat);
    fast_ticks += counter_ticks();
    for (uint16_t i = 0; i < q.feature_dim; ++i) bad += feat[i] != ref_feat[i];
    counter_start();
    odl::run_backbone(kOdlModel, kFloatWindows[w], g_farena, ODL_ARENA_FLOATS, ffeat);
    float_ticks += counter_ticks();
  }
  for (uint16_t l = 0; l < q.num_layers; ++l) ref_ticks += layer_ref[l];
  printf("real windows %lu outputs %lu mismatches %lu\n", (unsigned long)kInt8WindowCount, (unsigned long)outputs,
         (unsigned long)bad);
  const uint32_t n = kInt8WindowCount;
  printf("per_window float_forward %lu int8_reference %lu int8_optimized %lu\n",
         (unsigned long)(float_ticks * kInstructionsPerTick / n), (unsigned long)(ref_ticks * kInstructionsPerTick / n),
         (unsigned long)(fast_ticks * kInstructionsPerTick / n));
  for (uint16_t l = 0; l < q.num_layers; ++l)
    printf("layer %u type %u reference %lu optimized %lu\n", l, (unsigned)q.layers[l].type,
           (unsigned long)(layer_ref[l] * kInstructionsPerTick / n),
           (unsigned long)(layer_fast[l] * kInstructionsPerTick / n));
}

#endif

int main() {
  print_calibration();
  random_layers(600);
  requantize_edges();
#ifdef INT8_KERNELS_REAL
  real_backbone();
#endif
  printf("hash %lu\ndone\n", (unsigned long)g_hash);
  return 0;
}
