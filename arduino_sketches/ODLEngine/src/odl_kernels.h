// odl_kernels.h - float kernels of the frozen backbone and the layer-list runner.
// Activations are time-major: x[t * channels + c]. Weights use Keras layouts.
#ifndef ODL_KERNELS_H
#define ODL_KERNELS_H

#include "odl_numerics.h"
#include <stdint.h>

#include "odl_types.h"

// On a Cortex-M4F (hard or softfp ABI) the two inner loops below use VLDM/VMLA in
// inline assembly: VMLA.F32 on FPv4 is the *chained* (non-fused) multiply-accumulate,
// rounding after the multiply and after the add, exactly like `acc += a * b` compiled
// without contraction, so results stay bit-identical to the portable C path (host build).
// GCC does not emit VMLA by itself, and the generic loop costs ~6 instructions per MAC.
#if defined(__arm__) && defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && ((__ARM_FP & 4) != 0) && \
    !defined(ODL_NO_VFP_ASM)
#define ODL_VFP_ASM 1
#else
#define ODL_VFP_ASM 0
#endif

ODL_NUMERICS_BEGIN
namespace odl {

// acc + a[0]*b[0] + a[1]*b[1] + ... accumulated left to right (one rounding per op).
inline float dot_acc(float acc, const float* a, const float* b, uint32_t n) {
#if ODL_VFP_ASM
#define ODL_DOT4                  \
  "vldmia %[a]!, {s8-s11}\n\t"    \
  "vldmia %[b]!, {s12-s15}\n\t"   \
  "vmla.f32 %[acc], s8, s12\n\t"  \
  "vmla.f32 %[acc], s9, s13\n\t"  \
  "vmla.f32 %[acc], s10, s14\n\t" \
  "vmla.f32 %[acc], s11, s15\n\t"
  for (uint32_t k = n >> 3; k; --k) {
    __asm__(ODL_DOT4 ODL_DOT4
            : [acc] "+t"(acc), [a] "+r"(a), [b] "+r"(b)
            :
            : "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "memory");
  }
  if (n & 4u) {
    __asm__(ODL_DOT4
            : [acc] "+t"(acc), [a] "+r"(a), [b] "+r"(b)
            :
            : "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "memory");
  }
#undef ODL_DOT4
  n &= 3u;
#endif
  for (uint32_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// y[i] += s * x[i]
inline void axpy(float* y, float s, const float* x, uint32_t n) {
#if ODL_VFP_ASM
#define ODL_AXPY4               \
  "vldmia %[y], {s8-s11}\n\t"   \
  "vldmia %[x]!, {s12-s15}\n\t" \
  "vmla.f32 s8, %[s], s12\n\t"  \
  "vmla.f32 s9, %[s], s13\n\t"  \
  "vmla.f32 s10, %[s], s14\n\t" \
  "vmla.f32 s11, %[s], s15\n\t" \
  "vstmia %[y]!, {s8-s11}\n\t"
  for (uint32_t k = n >> 3; k; --k) {
    __asm__(ODL_AXPY4 ODL_AXPY4
            : [y] "+r"(y), [x] "+r"(x)
            : [s] "t"(s)
            : "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "memory");
  }
  if (n & 4u) {
    __asm__(ODL_AXPY4
            : [y] "+r"(y), [x] "+r"(x)
            : [s] "t"(s)
            : "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "memory");
  }
#undef ODL_AXPY4
  n &= 3u;
#endif
  for (uint32_t i = 0; i < n; ++i) y[i] += s * x[i];
}

// SGD with momentum on n weights (the head's update):
//   g = gW * inv_m (+ wd * W);  v = mu * v - lr * g;  W += v
inline void sgd_momentum(float* W, float* v, const float* gW, uint32_t n, float inv_m, float wd, float mu, float lr) {
#if ODL_VFP_ASM
  // Four weights per step, one loop body for both cases; only the weight-decay term is left out
  // without decay (the C tail below has the same two cases).
#define ODL_SGD4(DECAY)                                                                            \
  for (uint32_t k = n >> 2; k; --k) {                                                              \
    __asm__(                                                                                       \
        "vldmia %[g]!, {s4-s7}\n\t"                                                                \
        "vldmia %[w], {s8-s11}\n\t"                                                                \
        "vldmia %[v], {s12-s15}\n\t"                                                               \
        "vmul.f32 s4, s4, %[im]\n\t"                                                               \
        "vmul.f32 s5, s5, %[im]\n\t"                                                               \
        "vmul.f32 s6, s6, %[im]\n\t"                                                               \
        "vmul.f32 s7, s7, %[im]\n\t" DECAY                                                         \
        "vmul.f32 s12, s12, %[mu]\n\t"                                                             \
        "vmul.f32 s13, s13, %[mu]\n\t"                                                             \
        "vmul.f32 s14, s14, %[mu]\n\t"                                                             \
        "vmul.f32 s15, s15, %[mu]\n\t"                                                             \
        "vmls.f32 s12, %[lr], s4\n\t"                                                              \
        "vmls.f32 s13, %[lr], s5\n\t"                                                              \
        "vmls.f32 s14, %[lr], s6\n\t"                                                              \
        "vmls.f32 s15, %[lr], s7\n\t"                                                              \
        "vadd.f32 s8, s8, s12\n\t"                                                                 \
        "vadd.f32 s9, s9, s13\n\t"                                                                 \
        "vadd.f32 s10, s10, s14\n\t"                                                               \
        "vadd.f32 s11, s11, s15\n\t"                                                               \
        "vstmia %[v]!, {s12-s15}\n\t"                                                              \
        "vstmia %[w]!, {s8-s11}"                                                                   \
        : [g] "+r"(gW), [w] "+r"(W), [v] "+r"(v)                                                   \
        : [im] "t"(inv_m), [wd] "t"(wd), [mu] "t"(mu), [lr] "t"(lr)                                \
        : "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "memory"); \
  }
  if (wd > 0.0f) {
    ODL_SGD4(
        "vmla.f32 s4, %[wd], s8\n\t"
        "vmla.f32 s5, %[wd], s9\n\t"
        "vmla.f32 s6, %[wd], s10\n\t"
        "vmla.f32 s7, %[wd], s11\n\t")
  } else {
    ODL_SGD4("")
  }
#undef ODL_SGD4
  n &= 3u;
#endif
  for (uint32_t i = 0; i < n; ++i) {
    const float g = wd > 0.0f ? gW[i] * inv_m + wd * W[i] : gW[i] * inv_m;
    const float nv = mu * v[i] - lr * g;
    v[i] = nv;
    W[i] += nv;
  }
}

// y (T-K+1, Cout) = b + sum_{j<K, i<Cin} x[t+j][i] * W[j][i][o]
void conv1d_valid(const float* x, uint16_t T, uint16_t Cin, const float* W, const float* b, uint16_t K, uint16_t Cout,
                  float* y);
// y (T-K+1, C) = b[c] + sum_{j<K} x[t+j][c] * W[j][c]
void depthwise_conv1d_valid(const float* x, uint16_t T, uint16_t C, const float* W, const float* b, uint16_t K,
                            float* y);
// y (out) = b + x (in) . W (in, out)
void dense(const float* x, uint16_t in, const float* W, const float* b, uint16_t out, float* y);
void relu_inplace(float* x, uint32_t n);

// Backward of y = b + x . W (in, out), for one example (shared by every training plan):
//   gW (in, out) += x outer dy;   gb (out) += dy;   dx (in) = W . dy   (dx may be nullptr)
// Accumulates into gW / gb (zero them before a batch); dx is overwritten.
void dense_backward(const float* x, uint16_t in, const float* W, uint16_t out, const float* dy, float* gW, float* gb,
                    float* dx);
// Backward of y = relu(x) given the layer's *output* y: dy[i] = 0 where y[i] <= 0.
void relu_backward_inplace(const float* y, float* dy, uint32_t n);
// Backward of conv1d_valid for one example (x: the layer's input (T, Cin), dy: (T-K+1, Cout)):
//   gb (Cout) += sum_t dy[t];  gW (K, Cin, Cout) += x[t+j][i] dy[t];  dx (T, Cin) = sum W[j][i] . dy[t-j]
// gW, gb and dx may each be nullptr (x is only read for gW). Accumulates gW / gb; dx is overwritten.
void conv1d_backward(const float* x, uint16_t T, uint16_t Cin, const float* W, uint16_t K, uint16_t Cout,
                     const float* dy, float* gW, float* gb, float* dx);
// Backward of depthwise_conv1d_valid (same conventions, W (K, C)).
void depthwise_conv1d_backward(const float* x, uint16_t T, uint16_t C, const float* W, uint16_t K, const float* dy,
                               float* gW, float* gb, float* dx);
// Backward of global_avg_pool1d: dx[t][c] = dy[c] / T.
void global_avg_pool1d_backward(const float* dy, uint16_t T, uint16_t C, float* dx);
// y (T / pool, C): max over non-overlapping windows, remainder dropped (Keras 'valid')
void maxpool1d(const float* x, uint16_t T, uint16_t C, uint16_t pool, float* y);
// y (C): mean over T
void global_avg_pool1d(const float* x, uint16_t T, uint16_t C, float* y);

// Output shape (To, Co) of one layer on a (T, C) input; false if the layer does not fit its input.
bool layer_out_shape(const LayerSpec& L, uint16_t T, uint16_t C, uint16_t* To, uint16_t* Co);

// The shape walk of a layer list (float and int8 alike): from an input of (T, C), every layer's
// out_shape(layer, T, C, &To, &Co) must accept its input, and the input and every output must fit
// in `half` elements (one half of the ping-pong arena). kOk with the last shape in *T_out, *C_out;
// otherwise kErrBadModel (a layer does not fit its input) or kErrArenaTooSmall, whichever comes first.
template <class Layer, class OutShape>
Status walk_layer_shapes(const Layer* layers, uint16_t num_layers, uint16_t T, uint16_t C, uint32_t half,
                         OutShape out_shape, uint16_t* T_out, uint16_t* C_out) {
  if ((uint32_t)T * C > half) return kErrArenaTooSmall;
  for (uint16_t l = 0; l < num_layers; ++l) {
    uint16_t To = 0, Co = 0;
    if (!out_shape(layers[l], T, C, &To, &Co)) return kErrBadModel;
    if ((uint32_t)To * Co > half) return kErrArenaTooSmall;
    T = To;
    C = Co;
  }
  *T_out = T;
  *C_out = C;
  return kOk;
}

// Checks layer shapes chain from (input_len, input_channels) to (1, feature_dim)
// and that every activation fits in half of an arena of arena_floats.
Status validate_model(const ModelSpec& spec, uint32_t arena_floats);

// What run_layers shows a tape (the training forward, odl_backprop.cpp) of each layer l:
//   input(l, x, T, C)              before the layer runs on x (T, C)
//   output(l, x, y, To, Co)        after it wrote y (before its fused activation; x still intact)
//   activated(l, y, To, Co)        after the fused activation (the layer's final output)
// NoTap observes nothing (inference); the empty calls inline away.
struct NoTap {
  void input(uint16_t, const float*, uint16_t, uint16_t) {}
  void output(uint16_t, const float*, const float*, uint16_t, uint16_t) {}
  void activated(uint16_t, const float*, uint16_t, uint16_t) {}
};

// The one layer runner: runs spec's layers on the activation in the first half of arena (T x C =
// input_len x input_channels), ping-ponging between the two halves (`half` floats each).
// Returns the output (inside the arena; *T_out x *C_out), or nullptr if a layer does not fit.
template <class Tap>
const float* run_layers(const ModelSpec& spec, float* arena, uint32_t half, Tap& tap, uint16_t* T_out,
                        uint16_t* C_out) {
  float* cur = arena;
  float* nxt = arena + half;
  uint16_t T = spec.input_len, C = spec.input_channels;
  for (uint16_t l = 0; l < spec.num_layers; ++l) {
    const LayerSpec& L = spec.layers[l];
    uint16_t To = 0, Co = 0;
    if (!layer_out_shape(L, T, C, &To, &Co) || (uint32_t)To * Co > half) return nullptr;
    tap.input(l, cur, T, C);
    bool swap = true;
    switch (L.type) {
      case kConv1D: conv1d_valid(cur, T, C, L.weights, L.bias, L.kernel, Co, nxt); break;
      case kDepthwiseConv1D: depthwise_conv1d_valid(cur, T, C, L.weights, L.bias, L.kernel, nxt); break;
      case kDense: dense(cur, C, L.weights, L.bias, Co, nxt); break;
      case kReLU:
        relu_inplace(cur, (uint32_t)T * C);
        swap = false;
        break;
      case kMaxPool1D: maxpool1d(cur, T, C, L.kernel, nxt); break;
      case kGlobalAvgPool1D: global_avg_pool1d(cur, T, C, nxt); break;
      default: return nullptr;
    }
    tap.output(l, cur, swap ? nxt : cur, To, Co);
    if (swap) {
      float* tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
    T = To;
    C = Co;
    if (L.activation == kActRelu) relu_inplace(cur, (uint32_t)T * C);
    tap.activated(l, cur, T, C);
  }
  *T_out = T;
  *C_out = C;
  return cur;
}

// Normalizes one raw window ((x - mean) / std per channel) and runs the layers (run_layers),
// ping-ponging between the two halves of arena. Writes spec.feature_dim floats.
Status run_backbone(const ModelSpec& spec, const float* raw_window, float* arena, uint32_t arena_floats,
                    float* features);

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_KERNELS_H
