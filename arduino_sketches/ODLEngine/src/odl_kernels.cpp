#include "odl_kernels.h"
#include "odl_numerics.h"

#include <string.h>

ODL_NUMERICS_BEGIN
namespace odl {

void conv1d_valid(const float* x, uint16_t T, uint16_t Cin, const float* W, const float* b, uint16_t K, uint16_t Cout,
                  float* y) {
  const uint16_t To = (uint16_t)(T - K + 1);
  for (uint16_t t = 0; t < To; ++t) {
    float* yt = y + (uint32_t)t * Cout;
    for (uint16_t o = 0; o < Cout; ++o) yt[o] = b ? b[o] : 0.0f;
    for (uint16_t j = 0; j < K; ++j) {
      const float* xr = x + (uint32_t)(t + j) * Cin;
      const float* wj = W + (uint32_t)j * Cin * Cout;
      for (uint16_t i = 0; i < Cin; ++i) axpy(yt, xr[i], wj + (uint32_t)i * Cout, Cout);
    }
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
  for (uint16_t i = 0; i < in; ++i) axpy(y, x[i], W + (uint32_t)i * out, out);
}

void relu_inplace(float* x, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (!(x[i] > 0.0f)) x[i] = 0.0f;
}

void dense_backward(const float* x, uint16_t in, const float* W, uint16_t out, const float* dy, float* gW, float* gb,
                    float* dx) {
  if (gb)
    for (uint16_t o = 0; o < out; ++o) gb[o] += dy[o];
  for (uint16_t i = 0; i < in; ++i) {
    const float* wi = W + (uint32_t)i * out;
    if (gW) axpy(gW + (uint32_t)i * out, x[i], dy, out);
    if (dx) dx[i] = dot_acc(0.0f, wi, dy, out);
  }
}

void relu_backward_inplace(const float* y, float* dy, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (!(y[i] > 0.0f)) dy[i] = 0.0f;
}

void conv1d_backward(const float* x, uint16_t T, uint16_t Cin, const float* W, uint16_t K, uint16_t Cout,
                     const float* dy, float* gW, float* gb, float* dx) {
  const uint16_t To = (uint16_t)(T - K + 1);
  if (dx) memset(dx, 0, sizeof(float) * T * Cin);
  for (uint16_t t = 0; t < To; ++t) {
    const float* dyt = dy + (uint32_t)t * Cout;
    if (gb) axpy(gb, 1.0f, dyt, Cout);  // 1 * dy is exact: gb += dy
    for (uint16_t j = 0; j < K; ++j) {
      const uint32_t row = (uint32_t)(t + j) * Cin;
      const float* wj = W + (uint32_t)j * Cin * Cout;
      for (uint16_t i = 0; i < Cin; ++i) {
        if (gW) axpy(gW + ((uint32_t)j * Cin + i) * Cout, x[row + i], dyt, Cout);
        if (dx) dx[row + i] = dot_acc(dx[row + i], wj + (uint32_t)i * Cout, dyt, Cout);
      }
    }
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
  const uint32_t half = arena_floats / 2;
  uint16_t T = spec.input_len, C = spec.input_channels;
  if ((uint32_t)T * C > half) return kErrArenaTooSmall;
  for (uint16_t l = 0; l < spec.num_layers; ++l) {
    uint16_t To = 0, Co = 0;
    if (!layer_out_shape(spec.layers[l], T, C, &To, &Co)) return kErrBadModel;
    if ((uint32_t)To * Co > half) return kErrArenaTooSmall;
    T = To;
    C = Co;
  }
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
