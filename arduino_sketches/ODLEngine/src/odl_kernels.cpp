#include "odl_kernels.h"
#include "odl_numerics.h"

#include <string.h>

ODL_NUMERICS_BEGIN
namespace odl {

namespace {

// The register-blocked inner loops of the conv / dense kernels. Each keeps a block of
// accumulators in VFP registers across its whole loop instead of loading and storing them per
// multiply-accumulate (what axpy / dot_acc do), and accumulates every element in the same order as
// the portable C loop below it (VMLA.F32: chained, two roundings), so the results are bit-identical.

// acc[q] += x[k * xs] * w[k * ws + q] for k = 0 .. n-1 in order, q < m (strides in floats).
// The conv / dense forward (x: the input row, w: a kernel column block) and the kernel gradient
// (x: an input channel over time, w: dy over time) are this loop.
void mac_block(float* acc, uint16_t m, const float* x, uint32_t xs, const float* w, uint32_t ws, uint32_t n) {
#if ODL_VFP_ASM
  if (n) {
    const uint32_t xb = xs * 4u;
    for (; m >= 16; m = (uint16_t)(m - 16), acc += 16, w += 16) {
      const float* xp = x;
      const float* wp = w;
      uint32_t k = n;
      const uint32_t wb = ws * 4u - 32u;
      __asm__ volatile(
          "vldmia %[acc], {s16-s31}\n\t"
          "1:\n\t"
          "vldr s0, [%[x]]\n\t"
          "add %[x], %[x], %[xb]\n\t"
          "vldmia %[w]!, {s8-s15}\n\t"
          "vmla.f32 s16, s0, s8\n\t"
          "vmla.f32 s17, s0, s9\n\t"
          "vmla.f32 s18, s0, s10\n\t"
          "vmla.f32 s19, s0, s11\n\t"
          "vmla.f32 s20, s0, s12\n\t"
          "vmla.f32 s21, s0, s13\n\t"
          "vmla.f32 s22, s0, s14\n\t"
          "vmla.f32 s23, s0, s15\n\t"
          "vldmia %[w], {s8-s15}\n\t"
          "add %[w], %[w], %[wb]\n\t"
          "vmla.f32 s24, s0, s8\n\t"
          "vmla.f32 s25, s0, s9\n\t"
          "vmla.f32 s26, s0, s10\n\t"
          "vmla.f32 s27, s0, s11\n\t"
          "vmla.f32 s28, s0, s12\n\t"
          "vmla.f32 s29, s0, s13\n\t"
          "vmla.f32 s30, s0, s14\n\t"
          "vmla.f32 s31, s0, s15\n\t"
          "subs %[k], %[k], #1\n\t"
          "bne 1b\n\t"
          "vstmia %[acc], {s16-s31}"
          : [x] "+r"(xp), [w] "+r"(wp), [k] "+r"(k)
          : [acc] "r"(acc), [xb] "r"(xb), [wb] "r"(wb)
          : "s0", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22",
            "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31", "cc", "memory");
    }
    for (; m >= 8; m = (uint16_t)(m - 8), acc += 8, w += 8) {
      const float* xp = x;
      const float* wp = w;
      uint32_t k = n;
      const uint32_t wb = ws * 4u;
      __asm__ volatile(
          "vldmia %[acc], {s16-s23}\n\t"
          "1:\n\t"
          "vldr s0, [%[x]]\n\t"
          "add %[x], %[x], %[xb]\n\t"
          "vldmia %[w], {s8-s15}\n\t"
          "add %[w], %[w], %[wb]\n\t"
          "vmla.f32 s16, s0, s8\n\t"
          "vmla.f32 s17, s0, s9\n\t"
          "vmla.f32 s18, s0, s10\n\t"
          "vmla.f32 s19, s0, s11\n\t"
          "vmla.f32 s20, s0, s12\n\t"
          "vmla.f32 s21, s0, s13\n\t"
          "vmla.f32 s22, s0, s14\n\t"
          "vmla.f32 s23, s0, s15\n\t"
          "subs %[k], %[k], #1\n\t"
          "bne 1b\n\t"
          "vstmia %[acc], {s16-s23}"
          : [x] "+r"(xp), [w] "+r"(wp), [k] "+r"(k)
          : [acc] "r"(acc), [xb] "r"(xb), [wb] "r"(wb)
          : "s0", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22",
            "s23", "cc", "memory");
    }
  }
#endif
  for (uint16_t q = 0; q < m; ++q) {
    float a = acc[q];
    for (uint32_t k = 0; k < n; ++k) a += x[k * xs] * w[k * ws + q];
    acc[q] = a;
  }
}

// acc[r] = dot_acc(acc[r], w + r * ws, v, n) for r < m: m dot products with the same v, four at a
// time (v is loaded once per four rows).
void dot_rows(float* acc, uint16_t m, const float* w, uint32_t ws, const float* v, uint32_t n) {
#if ODL_VFP_ASM
  if (n >= 4) {
    for (; m >= 4; m = (uint16_t)(m - 4), acc += 4, w += 4 * ws) {
      const float* vp = v;
      const float* w0 = w;
      const float* w1 = w + ws;
      const float* w2 = w + 2 * ws;
      const float* w3 = w + 3 * ws;
      uint32_t k = n >> 2;
      __asm__ volatile(
          "vldmia %[acc], {s16-s19}\n\t"
          "1:\n\t"
          "vldmia %[v]!, {s8-s11}\n\t"
          "vldmia %[w0]!, {s12-s15}\n\t"
          "vmla.f32 s16, s12, s8\n\t"
          "vmla.f32 s16, s13, s9\n\t"
          "vmla.f32 s16, s14, s10\n\t"
          "vmla.f32 s16, s15, s11\n\t"
          "vldmia %[w1]!, {s12-s15}\n\t"
          "vmla.f32 s17, s12, s8\n\t"
          "vmla.f32 s17, s13, s9\n\t"
          "vmla.f32 s17, s14, s10\n\t"
          "vmla.f32 s17, s15, s11\n\t"
          "vldmia %[w2]!, {s12-s15}\n\t"
          "vmla.f32 s18, s12, s8\n\t"
          "vmla.f32 s18, s13, s9\n\t"
          "vmla.f32 s18, s14, s10\n\t"
          "vmla.f32 s18, s15, s11\n\t"
          "vldmia %[w3]!, {s12-s15}\n\t"
          "vmla.f32 s19, s12, s8\n\t"
          "vmla.f32 s19, s13, s9\n\t"
          "vmla.f32 s19, s14, s10\n\t"
          "vmla.f32 s19, s15, s11\n\t"
          "subs %[k], %[k], #1\n\t"
          "bne 1b\n\t"
          "vstmia %[acc], {s16-s19}"
          : [v] "+r"(vp), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3), [k] "+r"(k)
          : [acc] "r"(acc)
          : "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "cc", "memory");
      const uint32_t done = n & ~3u;  // the last n % 4 terms, in order after the rest
      for (uint16_t r = 0; r < 4; ++r)
        for (uint32_t o = done; o < n; ++o) acc[r] += w[r * ws + o] * v[o];
    }
  }
#endif
  for (uint16_t r = 0; r < m; ++r) acc[r] = dot_acc(acc[r], w + (uint32_t)r * ws, v, n);
}

}  // namespace

void conv1d_valid(const float* x, uint16_t T, uint16_t Cin, const float* W, const float* b, uint16_t K, uint16_t Cout,
                  float* y) {
  // y[t][o] = b[o] + x[t][0] W[0][0][o] + x[t][1] W[0][1][o] + ...: the K * Cin inputs of the
  // output row are contiguous (x + t * Cin), the weights of one output at stride Cout
  const uint16_t To = (uint16_t)(T - K + 1);
  const uint32_t n = (uint32_t)K * Cin;
  for (uint16_t t = 0; t < To; ++t) {
    float* yt = y + (uint32_t)t * Cout;
    for (uint16_t o = 0; o < Cout; ++o) yt[o] = b ? b[o] : 0.0f;
    mac_block(yt, Cout, x + (uint32_t)t * Cin, 1, W, Cout, n);
  }
}

void depthwise_conv1d_valid(const float* x, uint16_t T, uint16_t C, const float* W, const float* b, uint16_t K,
                            float* y) {
  const uint16_t To = (uint16_t)(T - K + 1);
  for (uint16_t t = 0; t < To; ++t) {
    float* yt = y + (uint32_t)t * C;
    for (uint16_t c = 0; c < C; ++c) yt[c] = b ? b[c] : 0.0f;
    for (uint16_t j = 0; j < K; ++j) {
      const float* xr = x + (uint32_t)(t + j) * C;
      const float* wr = W + (uint32_t)j * C;
      for (uint16_t c = 0; c < C; ++c) yt[c] += xr[c] * wr[c];
    }
  }
}

void dense(const float* x, uint16_t in, const float* W, const float* b, uint16_t out, float* y) {
  for (uint16_t o = 0; o < out; ++o) y[o] = b ? b[o] : 0.0f;
  mac_block(y, out, x, 1, W, out, in);
}

void relu_inplace(float* x, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (!(x[i] > 0.0f)) x[i] = 0.0f;
}

void dense_backward(const float* x, uint16_t in, const float* W, uint16_t out, const float* dy, float* gW, float* gb,
                    float* dx) {
  if (gb)
    for (uint16_t o = 0; o < out; ++o) gb[o] += dy[o];
  if (gW)
    for (uint16_t i = 0; i < in; ++i) axpy(gW + (uint32_t)i * out, x[i], dy, out);
  if (dx) {
    for (uint16_t i = 0; i < in; ++i) dx[i] = 0.0f;
    dot_rows(dx, in, W, out, dy, out);
  }
}

void relu_backward_inplace(const float* y, float* dy, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (!(y[i] > 0.0f)) dy[i] = 0.0f;
}

void conv1d_backward(const float* x, uint16_t T, uint16_t Cin, const float* W, uint16_t K, uint16_t Cout,
                     const float* dy, float* gW, float* gb, float* dx) {
  // Each gradient element accumulates its terms in the order of t (then o for dx), as the
  // loop "for t: for j: for i: gW[j][i] += x[t+j][i] dy[t]; dx[t+j][i] += W[j][i] . dy[t]" does.
  const uint16_t To = (uint16_t)(T - K + 1);
  if (gb)
    for (uint16_t t = 0; t < To; ++t) {
      const float* dyt = dy + (uint32_t)t * Cout;
      for (uint16_t o = 0; o < Cout; ++o) gb[o] += dyt[o];
    }
  if (gW)  // gW[j][i][o] += sum_t x[t+j][i] dy[t][o]: x at stride Cin, dy at stride Cout
    for (uint16_t j = 0; j < K; ++j)
      for (uint16_t i = 0; i < Cin; ++i)
        mac_block(gW + ((uint32_t)j * Cin + i) * Cout, Cout, x + (uint32_t)j * Cin + i, Cin, dy, Cout, To);
  if (!dx) return;
  memset(dx, 0, sizeof(float) * T * Cin);
  for (uint16_t t = 0; t < To; ++t) {
    const float* dyt = dy + (uint32_t)t * Cout;
    for (uint16_t j = 0; j < K; ++j)
      dot_rows(dx + (uint32_t)(t + j) * Cin, Cin, W + (uint32_t)j * Cin * Cout, Cout, dyt, Cout);
  }
}

void depthwise_conv1d_backward(const float* x, uint16_t T, uint16_t C, const float* W, uint16_t K, const float* dy,
                               float* gW, float* gb, float* dx) {
  const uint16_t To = (uint16_t)(T - K + 1);
  if (dx) memset(dx, 0, sizeof(float) * T * C);
  for (uint16_t t = 0; t < To; ++t) {
    const float* dyt = dy + (uint32_t)t * C;
    if (gb) axpy(gb, 1.0f, dyt, C);
    for (uint16_t j = 0; j < K; ++j) {
      const uint32_t row = (uint32_t)(t + j) * C;
      const float* wj = W + (uint32_t)j * C;
      if (gW) {
        float* gj = gW + (uint32_t)j * C;
        for (uint16_t c = 0; c < C; ++c) gj[c] += x[row + c] * dyt[c];
      }
      if (dx)
        for (uint16_t c = 0; c < C; ++c) dx[row + c] += wj[c] * dyt[c];
    }
  }
}

void global_avg_pool1d_backward(const float* dy, uint16_t T, uint16_t C, float* dx) {
  const float inv = 1.0f / (float)T;
  for (uint16_t t = 0; t < T; ++t) {
    float* dxt = dx + (uint32_t)t * C;
    for (uint16_t c = 0; c < C; ++c) dxt[c] = dy[c] * inv;
  }
}

void maxpool1d(const float* x, uint16_t T, uint16_t C, uint16_t pool, float* y) {
  const uint16_t To = (uint16_t)(T / pool);
  for (uint16_t t = 0; t < To; ++t) {
    const float* x0 = x + (uint32_t)t * pool * C;
    float* yt = y + (uint32_t)t * C;
    for (uint16_t c = 0; c < C; ++c) yt[c] = x0[c];
    for (uint16_t j = 1; j < pool; ++j) {
      const float* xj = x0 + (uint32_t)j * C;
      for (uint16_t c = 0; c < C; ++c)
        if (xj[c] > yt[c]) yt[c] = xj[c];
    }
  }
}

void global_avg_pool1d(const float* x, uint16_t T, uint16_t C, float* y) {
  for (uint16_t c = 0; c < C; ++c) y[c] = 0.0f;
  for (uint16_t t = 0; t < T; ++t) {
    const float* xt = x + (uint32_t)t * C;
    for (uint16_t c = 0; c < C; ++c) y[c] += xt[c];
  }
  const float inv = 1.0f / (float)T;
  for (uint16_t c = 0; c < C; ++c) y[c] *= inv;
}

bool layer_out_shape(const LayerSpec& L, uint16_t T, uint16_t C, uint16_t* To, uint16_t* Co) {
  switch (L.type) {
    case kConv1D:
      if (L.in_channels != C || L.kernel == 0 || L.kernel > T || !L.weights || L.out_channels == 0) return false;
      *To = (uint16_t)(T - L.kernel + 1);
      *Co = L.out_channels;
      return true;
    case kDepthwiseConv1D:
      if (L.in_channels != C || L.out_channels != C || L.kernel == 0 || L.kernel > T || !L.weights) return false;
      *To = (uint16_t)(T - L.kernel + 1);
      *Co = C;
      return true;
    case kDense:
      if (T != 1 || L.in_channels != C || !L.weights || L.out_channels == 0) return false;
      *To = 1;
      *Co = L.out_channels;
      return true;
    case kReLU:
      *To = T;
      *Co = C;
      return true;
    case kMaxPool1D:
      if (L.kernel == 0 || T / L.kernel == 0) return false;
      *To = (uint16_t)(T / L.kernel);
      *Co = C;
      return true;
    case kGlobalAvgPool1D:
      *To = 1;
      *Co = C;
      return true;
    default: return false;
  }
}

Status validate_model(const ModelSpec& spec, uint32_t arena_floats) {
  if (!spec.layers || spec.num_layers == 0 || !spec.input_mean || !spec.input_std) return kErrBadModel;
  if (spec.input_len == 0 || spec.input_channels == 0 || spec.feature_dim == 0) return kErrBadModel;
  if (spec.num_classes > 0 && (!spec.head_weights || !spec.head_bias || !spec.class_names)) return kErrBadModel;
  for (uint16_t c = 0; c < spec.input_channels; ++c)
    if (!(spec.input_std[c] > 0.0f)) return kErrBadModel;
  uint16_t T = 0, C = 0;
  const Status s = walk_layer_shapes(spec.layers, spec.num_layers, spec.input_len, spec.input_channels,
                                     arena_floats / 2, layer_out_shape, &T, &C);
  if (s != kOk) return s;
  if (T != 1 || C != spec.feature_dim) return kErrBadModel;
  return kOk;
}

Status run_backbone(const ModelSpec& spec, const float* raw_window, float* arena, uint32_t arena_floats,
                    float* features) {
  if (!raw_window || !arena || !features) return kErrBadArgument;
  const uint32_t half = arena_floats / 2;
  const uint16_t T = spec.input_len, C = spec.input_channels;
  if ((uint32_t)T * C > half) return kErrArenaTooSmall;
  for (uint16_t t = 0; t < T; ++t)
    for (uint16_t c = 0; c < C; ++c) {
      const uint32_t k = (uint32_t)t * C + c;
      arena[k] = (raw_window[k] - spec.input_mean[c]) / spec.input_std[c];
    }
  NoTap none;
  uint16_t To = 0, Co = 0;
  const float* out = run_layers(spec, arena, half, none, &To, &Co);
  if (!out || To != 1 || Co != spec.feature_dim) return kErrBadModel;
  memcpy(features, out, sizeof(float) * Co);
  return kOk;
}

}  // namespace odl
ODL_NUMERICS_END
