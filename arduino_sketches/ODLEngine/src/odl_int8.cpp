// odl_int8.cpp - see odl_int8.h.
#include "odl_int8.h"
#include "odl_numerics.h"

#include <math.h>
#include <string.h>

#include "odl_kernels.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

ODL_NUMERICS_BEGIN
namespace odl {

namespace {

int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / (1ll << 31));  // division truncates toward zero, as gemmlowp's
}

int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1ll << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

inline int8_t clamp8(int32_t v, int32_t lo, int32_t hi) { return (int8_t)(v < lo ? lo : (v > hi ? hi : v)); }

// y (T-K+1, Cout); W (Cout, K, Cin).
void qconv1d(const QLayerSpec& L, const int8_t* x, uint16_t T, int8_t* y) {
  const uint16_t K = L.kernel, Ci = L.in_channels, Co = L.out_channels, To = (uint16_t)(T - K + 1);
  const int32_t in_off = -L.in_zero;
  for (uint16_t t = 0; t < To; ++t)
    for (uint16_t o = 0; o < Co; ++o) {
      const int8_t* w = L.weights + (uint32_t)o * K * Ci;
      const int8_t* xr = x + (uint32_t)t * Ci;
      int32_t acc = 0;
      for (uint32_t k = 0; k < (uint32_t)K * Ci; ++k) acc += ((int32_t)xr[k] + in_off) * (int32_t)w[k];
      acc += L.bias[o];
      acc = multiply_by_quantized_multiplier(acc, L.multiplier[o], L.shift[o]) + L.out_zero;
      y[(uint32_t)t * Co + o] = clamp8(acc, L.act_min, L.act_max);
    }
}

// y (T-K+1, C); W (K, C).
void qdepthwise1d(const QLayerSpec& L, const int8_t* x, uint16_t T, int8_t* y) {
  const uint16_t K = L.kernel, C = L.in_channels, To = (uint16_t)(T - K + 1);
  const int32_t in_off = -L.in_zero;
  for (uint16_t t = 0; t < To; ++t)
    for (uint16_t c = 0; c < C; ++c) {
      int32_t acc = 0;
      for (uint16_t j = 0; j < K; ++j)
        acc += ((int32_t)x[(uint32_t)(t + j) * C + c] + in_off) * (int32_t)L.weights[(uint32_t)j * C + c];
      acc += L.bias[c];
      acc = multiply_by_quantized_multiplier(acc, L.multiplier[c], L.shift[c]) + L.out_zero;
      y[(uint32_t)t * C + c] = clamp8(acc, L.act_min, L.act_max);
    }
}

// y (out) from x (in); W (out, in).
void qdense(const QLayerSpec& L, const int8_t* x, int8_t* y) {
  const int32_t in_off = -L.in_zero;
  for (uint16_t o = 0; o < L.out_channels; ++o) {
    const int8_t* w = L.weights + (uint32_t)o * L.in_channels;
    int32_t acc = 0;
    for (uint16_t i = 0; i < L.in_channels; ++i) acc += ((int32_t)x[i] + in_off) * (int32_t)w[i];
    acc += L.bias[o];
    acc = multiply_by_quantized_multiplier(acc, L.multiplier[o], L.shift[o]) + L.out_zero;
    y[o] = clamp8(acc, L.act_min, L.act_max);
  }
}

// ---- The optimized int8 forward (CMSIS-NN style), beside the reference loops above ----
// Four bytes of x and of each weight row at a time, as pairs of 16-bit lanes: SXTB16 sign-extends
// bytes 0 and 2 (and, rotated by 8, bytes 1 and 3), SXTAB16 adds the input offset to both lanes
// while doing so, SMLAD multiplies both lanes and adds both products to an int32 accumulator. On
// a Cortex-M4 these are the DSP extension's instructions (ACLE, arm_acle.h; the rotated forms in
// inline assembly, GCC does not fold the rotation into them); elsewhere (host build) the same
// lane arithmetic in C. The lanes never overflow (|x - z_x| <= 255), every product is exact and
// an int32 sum does not depend on its order, so the accumulators equal the reference loops', and
// requantize() equals multiply_by_quantized_multiplier() for every input. Depthwise layers use the
// per-lane products SMLABB / SMLATT, max pooling the bytewise SSUB8 + SEL. The outputs are the
// reference kernels' bit for bit (tests/test_int8_kernels.py, on random layers and the real model,
// host and qemu).
typedef uint32_t Lanes;  // two int16 lanes: bits 0-15 and 16-31

// The output stage is inlined into the kernels: -Os would otherwise call it once per output.
#if defined(__GNUC__)
#define ODL_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ODL_ALWAYS_INLINE inline
#endif

inline Lanes load4(const int8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);  // one LDR on the Cortex-M4 (unaligned loads are allowed), little-endian lanes
  return v;
}

#if defined(__ARM_FEATURE_DSP)
inline Lanes sxtb16(uint32_t x) { return (Lanes)__sxtb16((int32_t)x); }
inline Lanes sxtb16_ror8(uint32_t x) {
  Lanes r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
inline Lanes sxtab16(Lanes a, uint32_t x) { return (Lanes)__sxtab16((int32_t)a, (int32_t)x); }
inline Lanes sxtab16_ror8(Lanes a, uint32_t x) {
  Lanes r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
inline int32_t smlad(Lanes a, Lanes b, int32_t acc) { return __smlad((int32_t)a, (int32_t)b, acc); }
inline int32_t smlabb(Lanes a, Lanes b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
inline int32_t smlatt(Lanes a, Lanes b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
// Bytewise signed maximum of four int8 lanes: SSUB8 sets a GE flag per byte where a >= b, SEL
// takes those bytes from a (one asm statement: nothing may touch the flags in between).
inline uint32_t max8x4(uint32_t a, uint32_t b) {
  uint32_t t, r;
  __asm__(
      "ssub8 %[t], %[a], %[b]\n\t"
      "sel %[r], %[a], %[b]"
      : [t] "=&r"(t), [r] "=r"(r)
      : [a] "r"(a), [b] "r"(b)
      : "cc");
  (void)t;
  return r;
}
inline uint32_t min8x4(uint32_t a, uint32_t b) {  // SEL takes b's bytes where a >= b
  uint32_t t, r;
  __asm__(
      "ssub8 %[t], %[a], %[b]\n\t"
      "sel %[r], %[b], %[a]"
      : [t] "=&r"(t), [r] "=r"(r)
      : [a] "r"(a), [b] "r"(b)
      : "cc");
  (void)t;
  return r;
}
#else
inline int32_t lane_lo(Lanes v) { return (int16_t)(uint16_t)(v & 0xFFFFu); }
inline int32_t lane_hi(Lanes v) { return (int16_t)(uint16_t)(v >> 16); }
inline Lanes lanes(int32_t lo, int32_t hi) { return (Lanes)(uint16_t)lo | ((Lanes)(uint16_t)hi << 16); }
inline int32_t byte_at(uint32_t x, int b) { return (int8_t)(uint8_t)(x >> (8 * b)); }
inline Lanes sxtb16(uint32_t x) { return lanes(byte_at(x, 0), byte_at(x, 2)); }
inline Lanes sxtb16_ror8(uint32_t x) { return lanes(byte_at(x, 1), byte_at(x, 3)); }
inline Lanes sxtab16(Lanes a, uint32_t x) { return lanes(lane_lo(a) + byte_at(x, 0), lane_hi(a) + byte_at(x, 2)); }
inline Lanes sxtab16_ror8(Lanes a, uint32_t x) { return lanes(lane_lo(a) + byte_at(x, 1), lane_hi(a) + byte_at(x, 3)); }
inline int32_t smlabb(Lanes a, Lanes b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(lane_lo(a) * lane_lo(b)));
}
inline int32_t smlatt(Lanes a, Lanes b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(lane_hi(a) * lane_hi(b)));
}
inline uint32_t max8x4(uint32_t a, uint32_t b) {
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i)
    r |= (uint32_t)(uint8_t)(byte_at(a, i) >= byte_at(b, i) ? byte_at(a, i) : byte_at(b, i)) << (8 * i);
  return r;
}
inline uint32_t min8x4(uint32_t a, uint32_t b) {
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i)
    r |= (uint32_t)(uint8_t)(byte_at(a, i) >= byte_at(b, i) ? byte_at(b, i) : byte_at(a, i)) << (8 * i);
  return r;
}
inline int32_t smlad(Lanes a, Lanes b, int32_t acc) {  // wraps like the instruction (no UB on overflow)
  return (int32_t)((uint32_t)acc + (uint32_t)(lane_lo(a) * lane_lo(b)) + (uint32_t)(lane_hi(a) * lane_hi(b)));
}
#endif

// multiply_by_quantized_multiplier without the int64 division: for a product ab that is not
// INT32_MIN^2, gemmlowp's (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 (truncating) equals
// floor((ab + 2^30) / 2^31) (for ab < 0 the truncation adds 2^31 - 1 before flooring), CMSIS-NN's
// form; the rounding shift is rounding_divide_by_pot's in 32 bits.
ODL_ALWAYS_INLINE int32_t requantize(int32_t x, int32_t m, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  if (right > 31) return multiply_by_quantized_multiplier(x, m, shift);
  const int32_t a = (int32_t)((uint32_t)x << left);
  const int32_t high = a == INT32_MIN && m == INT32_MIN ? INT32_MAX : (int32_t)(((int64_t)a * m + (1ll << 30)) >> 31);
  const int32_t mask = (int32_t)((1u << right) - 1u);
  const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> right) + ((high & mask) > threshold ? 1 : 0);
}

// The output stage of one layer, its fields read once: bias, requantization, zero point, clamp.
struct QOut {
  const int32_t* bias;
  const int32_t* mult;
  const int8_t* shift;
  int32_t zero, lo, hi;
  explicit QOut(const QLayerSpec& L)
      : bias(L.bias), mult(L.multiplier), shift(L.shift), zero(L.out_zero), lo(L.act_min), hi(L.act_max) {}
  ODL_ALWAYS_INLINE int8_t operator()(uint16_t o, int32_t acc) const {
    const int32_t v = requantize(acc + bias[o], mult[o], shift[o]) + zero;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
  }
};

// y[o .. o+rows) (rows <= 4; W rows of n bytes, one per output) of the input x (n bytes):
// sum_k (x[k] + in_off) * W[o][k], then the output stage.
void qdot_rows(const QOut& out, const int8_t* W, uint16_t o, uint16_t rows, const int8_t* x, uint32_t n, int32_t in_off,
               int8_t* y) {
  const int8_t* w = W + (uint32_t)o * n;
  const Lanes off2 = (Lanes)(uint16_t)in_off | ((Lanes)(uint16_t)in_off << 16);
  const uint32_t n4 = n & ~3u;
  if (rows == 4) {
    const int8_t *w0 = w, *w1 = w + n, *w2 = w + 2 * n, *w3 = w + 3 * n, *xp = x;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#if defined(__ARM_FEATURE_DSP)
    // the loop below in registers (GCC spills three of the row pointers): rows 1 and 3 are
    // addressed as rows 0 and 2 plus n
    if (n4) {
      const int8_t* w2p = w2;
      uint32_t k = n4 >> 2, xe, xo, t, wv;
      __asm__ volatile(
          "1:\n\t"
          "ldr %[wv], [%[x]], #4\n\t"
          "sxtab16 %[xe], %[off], %[wv]\n\t"
          "sxtab16 %[xo], %[off], %[wv], ror #8\n\t"
          "ldr %[wv], [%[w], %[n]]\n\t"
          "sxtb16 %[t], %[wv]\n\t"
          "sxtb16 %[wv], %[wv], ror #8\n\t"
          "smlad %[a1], %[wv], %[xo], %[a1]\n\t"
          "smlad %[a1], %[t], %[xe], %[a1]\n\t"
          "ldr %[wv], [%[w]], #4\n\t"
          "sxtb16 %[t], %[wv]\n\t"
          "sxtb16 %[wv], %[wv], ror #8\n\t"
          "smlad %[a0], %[wv], %[xo], %[a0]\n\t"
          "smlad %[a0], %[t], %[xe], %[a0]\n\t"
          "ldr %[wv], [%[w2], %[n]]\n\t"
          "sxtb16 %[t], %[wv]\n\t"
          "sxtb16 %[wv], %[wv], ror #8\n\t"
          "smlad %[a3], %[wv], %[xo], %[a3]\n\t"
          "smlad %[a3], %[t], %[xe], %[a3]\n\t"
          "ldr %[wv], [%[w2]], #4\n\t"
          "sxtb16 %[t], %[wv]\n\t"
          "sxtb16 %[wv], %[wv], ror #8\n\t"
          "smlad %[a2], %[wv], %[xo], %[a2]\n\t"
          "smlad %[a2], %[t], %[xe], %[a2]\n\t"
          "subs %[k], %[k], #1\n\t"
          "bne 1b"
          : [x] "+r"(xp), [w] "+r"(w0), [w2] "+r"(w2p), [k] "+r"(k), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),
            [a3] "+r"(a3), [xe] "=&r"(xe), [xo] "=&r"(xo), [t] "=&r"(t), [wv] "=&r"(wv)
          : [n] "r"(n), [off] "r"(off2)
          : "cc", "memory");
      w1 = w0 + n;
      w2 = w2p;
      w3 = w2p + n;
    }
#else
    for (uint32_t k = n4; k; k -= 4) {
      const uint32_t xv = load4(xp);
      xp += 4;
      const Lanes xe = sxtab16(off2, xv), xo = sxtab16_ror8(off2, xv);
      uint32_t wv = load4(w0);
      w0 += 4;
      a0 = smlad(sxtb16(wv), xe, smlad(sxtb16_ror8(wv), xo, a0));
      wv = load4(w1);
      w1 += 4;
      a1 = smlad(sxtb16(wv), xe, smlad(sxtb16_ror8(wv), xo, a1));
      wv = load4(w2);
      w2 += 4;
      a2 = smlad(sxtb16(wv), xe, smlad(sxtb16_ror8(wv), xo, a2));
      wv = load4(w3);
      w3 += 4;
      a3 = smlad(sxtb16(wv), xe, smlad(sxtb16_ror8(wv), xo, a3));
    }
#endif
    for (uint32_t k = n4; k < n; ++k) {  // the last n % 4 inputs
      const int32_t xv = (int32_t)x[k] + in_off;
      a0 += xv * (int32_t)w0[k - n4];
      a1 += xv * (int32_t)w1[k - n4];
      a2 += xv * (int32_t)w2[k - n4];
      a3 += xv * (int32_t)w3[k - n4];
    }
    y[0] = out(o, a0);
    y[1] = out((uint16_t)(o + 1), a1);
    y[2] = out((uint16_t)(o + 2), a2);
    y[3] = out((uint16_t)(o + 3), a3);
    return;
  }
  for (uint16_t r = 0; r < rows; ++r) {
    const int8_t *wr = w + (uint32_t)r * n, *xp = x;
    int32_t a = 0;
    for (uint32_t k = n4; k; k -= 4) {
      const uint32_t xv = load4(xp), wv = load4(wr);
      xp += 4;
      wr += 4;
      a = smlad(sxtb16(wv), sxtab16(off2, xv), smlad(sxtb16_ror8(wv), sxtab16_ror8(off2, xv), a));
    }
    for (uint32_t k = n4; k < n; ++k) a += ((int32_t)x[k] + in_off) * (int32_t)wr[k - n4];
    y[r] = out((uint16_t)(o + r), a);
  }
}

// qconv1d: each output row's K * Cin inputs are contiguous (x + t * Cin), as is each weight row
// (W (Cout, K, Cin)): four output channels at a time share the input words.
void qconv1d_fast(const QLayerSpec& L, const int8_t* x, uint16_t T, int8_t* y) {
  const uint16_t K = L.kernel, Ci = L.in_channels, Co = L.out_channels, To = (uint16_t)(T - K + 1);
  const uint32_t n = (uint32_t)K * Ci;
  const int32_t in_off = -L.in_zero;
  const QOut out(L);
  for (uint16_t t = 0; t < To; ++t) {
    const int8_t* xr = x + (uint32_t)t * Ci;
    int8_t* yt = y + (uint32_t)t * Co;
    uint16_t o = 0;
    for (; o + 4 <= Co; o = (uint16_t)(o + 4)) qdot_rows(out, L.weights, o, 4, xr, n, in_off, yt + o);
    if (o < Co) qdot_rows(out, L.weights, o, (uint16_t)(Co - o), xr, n, in_off, yt + o);
  }
}

// qdense: qconv1d_fast of one time step with K = 1 (W (out, in)).
void qdense_fast(const QLayerSpec& L, const int8_t* x, int8_t* y) {
  const uint16_t Co = L.out_channels;
  const int32_t in_off = -L.in_zero;
  const QOut out(L);
  uint16_t o = 0;
  for (; o + 4 <= Co; o = (uint16_t)(o + 4)) qdot_rows(out, L.weights, o, 4, x, L.in_channels, in_off, y + o);
  if (o < Co) qdot_rows(out, L.weights, o, (uint16_t)(Co - o), x, L.in_channels, in_off, y + o);
}

void qmaxpool1d(const QLayerSpec& L, const int8_t* x, uint16_t T, uint16_t C, int8_t* y) {
  const uint16_t pool = L.kernel, To = (uint16_t)(T / pool);
  for (uint16_t t = 0; t < To; ++t)
    for (uint16_t c = 0; c < C; ++c) {
      int32_t m = -128;
      for (uint16_t j = 0; j < pool; ++j) {
        const int32_t v = x[((uint32_t)t * pool + j) * C + c];
        if (v > m) m = v;
      }
      y[(uint32_t)t * C + c] = clamp8(m, L.act_min, L.act_max);
    }
}

// qdepthwise1d four channels at a time: the input and weight words of each tap as 16-bit lanes
// (bytes 0, 2 and 1, 3), one lane product per channel (SMLABB / SMLATT), int32 accumulators.
void qdepthwise1d_fast(const QLayerSpec& L, const int8_t* x, uint16_t T, int8_t* y) {
  const uint16_t K = L.kernel, C = L.in_channels, To = (uint16_t)(T - K + 1);
  const int32_t in_off = -L.in_zero;
  const Lanes off2 = (Lanes)(uint16_t)in_off | ((Lanes)(uint16_t)in_off << 16);
  const QOut out(L);
  for (uint16_t t = 0; t < To; ++t) {
    int8_t* yt = y + (uint32_t)t * C;
    uint16_t c = 0;
    for (; c + 4 <= C; c = (uint16_t)(c + 4)) {
      int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      const int8_t* xp = x + (uint32_t)t * C + c;
      const int8_t* wp = L.weights + c;
      for (uint16_t j = 0; j < K; ++j, xp += C, wp += C) {
        const uint32_t xv = load4(xp), wv = load4(wp);
        const Lanes xe = sxtab16(off2, xv), xo = sxtab16_ror8(off2, xv), we = sxtb16(wv), wo = sxtb16_ror8(wv);
        a0 = smlabb(xe, we, a0);
        a2 = smlatt(xe, we, a2);
        a1 = smlabb(xo, wo, a1);
        a3 = smlatt(xo, wo, a3);
      }
      yt[c] = out(c, a0);
      yt[c + 1] = out((uint16_t)(c + 1), a1);
      yt[c + 2] = out((uint16_t)(c + 2), a2);
      yt[c + 3] = out((uint16_t)(c + 3), a3);
    }
    for (; c < C; ++c) {
      int32_t acc = 0;
      for (uint16_t j = 0; j < K; ++j)
        acc += ((int32_t)x[(uint32_t)(t + j) * C + c] + in_off) * (int32_t)L.weights[(uint32_t)j * C + c];
      yt[c] = out(c, acc);
    }
  }
}

// qmaxpool1d four channels at a time (bytewise max of the pool's rows, then the clamp as a max
// with act_min and a min with act_max, which is clamp8 when act_min <= act_max).
void qmaxpool1d_fast(const QLayerSpec& L, const int8_t* x, uint16_t T, uint16_t C, int8_t* y) {
  if (L.act_min > L.act_max) return qmaxpool1d(L, x, T, C, y);
  const uint16_t pool = L.kernel, To = (uint16_t)(T / pool);
  const int32_t lo = L.act_min, hi = L.act_max;
  const uint32_t lo4 = 0x01010101u * (uint8_t)lo, hi4 = 0x01010101u * (uint8_t)hi;
  for (uint16_t t = 0; t < To; ++t) {
    const int8_t* x0 = x + (uint32_t)t * pool * C;
    int8_t* yt = y + (uint32_t)t * C;
    uint16_t c = 0;
    for (; c + 4 <= C; c = (uint16_t)(c + 4)) {
      uint32_t m = load4(x0 + c);
      for (uint16_t j = 1; j < pool; ++j) m = max8x4(load4(x0 + (uint32_t)j * C + c), m);
      m = max8x4(m, lo4);
      m = min8x4(m, hi4);
      memcpy(yt + c, &m, 4);
    }
    for (; c < C; ++c) {
      int32_t m = x0[c];
      for (uint16_t j = 1; j < pool; ++j)
        if (x0[(uint32_t)j * C + c] > m) m = x0[(uint32_t)j * C + c];
      yt[c] = (int8_t)(m < lo ? lo : (m > hi ? hi : m));
    }
  }
}

// MEAN over time, as TFLite's reference QuantizedMeanOrSum: the int32 sum minus the input zero
// point's share, times the multiplier (s_in / s_out) divided by the element count in fixed point.
void qmean1d(const QLayerSpec& L, const int8_t* x, uint16_t T, uint16_t C, int8_t* y) {
  int32_t mult = L.multiplier[0];
  int shift = L.shift[0];
  const int64_t n = T;
  int s = 63 - __builtin_clzll((uint64_t)n);
  if (s > 32) s = 32;
  if (s > 31 + shift) s = 31 + shift;
  mult = (int32_t)(((int64_t)mult << s) / n);
  shift -= s;
  for (uint16_t c = 0; c < C; ++c) {
    int32_t sum = 0;
    for (uint16_t t = 0; t < T; ++t) sum += x[(uint32_t)t * C + c];
    const int32_t v = multiply_by_quantized_multiplier(sum - L.in_zero * (int32_t)n, mult, shift) + L.out_zero;
    y[c] = clamp8(v, -128, 127);
  }
}

bool qlayer_out_shape(const QLayerSpec& L, uint16_t T, uint16_t C, uint16_t* To, uint16_t* Co) {
  switch (L.type) {
    case kConv1D:
      if (L.in_channels != C || L.kernel == 0 || L.kernel > T || !L.weights || !L.bias || !L.multiplier) return false;
      *To = (uint16_t)(T - L.kernel + 1);
      *Co = L.out_channels;
      return true;
    case kDepthwiseConv1D:
      if (L.in_channels != C || L.out_channels != C || L.kernel == 0 || L.kernel > T || !L.weights || !L.bias ||
          !L.multiplier)
        return false;
      *To = (uint16_t)(T - L.kernel + 1);
      *Co = C;
      return true;
    case kDense:
      if (T != 1 || L.in_channels != C || !L.weights || !L.bias || !L.multiplier) return false;
      *To = 1;
      *Co = L.out_channels;
      return true;
    case kMaxPool1D:
      if (L.kernel == 0 || T / L.kernel == 0) return false;
      *To = (uint16_t)(T / L.kernel);
      *Co = C;
      return true;
    case kGlobalAvgPool1D:
      if (!L.multiplier) return false;
      *To = 1;
      *Co = C;
      return true;
    default: return false;
  }
}

}  // namespace

int32_t multiply_by_quantized_multiplier(int32_t x, int32_t m, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul((int32_t)((uint32_t)x << left), m), right);
}

Status qlayer_forward(const QLayerSpec& L, const int8_t* x, uint16_t T, uint16_t C, int8_t* y, bool reference) {
  uint16_t To = 0, Co = 0;
  if (!x || !y || !qlayer_out_shape(L, T, C, &To, &Co)) return kErrBadModel;
  switch (L.type) {
    case kConv1D: reference ? qconv1d(L, x, T, y) : qconv1d_fast(L, x, T, y); break;
    case kDepthwiseConv1D: reference ? qdepthwise1d(L, x, T, y) : qdepthwise1d_fast(L, x, T, y); break;
    case kDense: reference ? qdense(L, x, y) : qdense_fast(L, x, y); break;
    case kMaxPool1D: reference ? qmaxpool1d(L, x, T, C, y) : qmaxpool1d_fast(L, x, T, C, y); break;
    case kGlobalAvgPool1D: qmean1d(L, x, T, C, y); break;
    default: return kErrBadModel;
  }
  return kOk;
}

Status qvalidate_model(const QModelSpec& spec, uint32_t arena_bytes) {
  if (!spec.layers || spec.num_layers == 0 || spec.input_len == 0 || spec.input_channels == 0) return kErrBadModel;
  if (!(spec.input_scale > 0.0f) || !(spec.feature_scale > 0.0f)) return kErrBadModel;
  uint16_t T = 0, C = 0;
  const Status s = walk_layer_shapes(spec.layers, spec.num_layers, spec.input_len, spec.input_channels, arena_bytes / 2,
                                     qlayer_out_shape, &T, &C);
  if (s != kOk) return s;
  return T == 1 && C == spec.feature_dim ? kOk : kErrBadModel;
}

static int8_t quantize_input_value(const QModelSpec& spec, float x) {
  const float v = x / spec.input_scale;
  float r = v >= 0.0f ? floorf(v + 0.5f) : ceilf(v - 0.5f);
  r += (float)spec.input_zero;
  if (!(r > -128.0f)) r = -128.0f;  // also NaN
  if (r > 127.0f) r = 127.0f;
  return (int8_t)(int32_t)r;
}

void qquantize_input(const QModelSpec& spec, const float* x, int8_t* q) {
  const uint32_t n = (uint32_t)spec.input_len * spec.input_channels;
  for (uint32_t i = 0; i < n; ++i) q[i] = quantize_input_value(spec, x[i]);
}

void qquantize_window(const ModelSpec& fspec, const QModelSpec& spec, const float* raw, int8_t* q) {
  const uint16_t C = spec.input_channels;
  const uint32_t n = (uint32_t)spec.input_len * C;
  for (uint32_t i = 0; i < n; ++i) {
    const uint16_t c = (uint16_t)(i % C);
    q[i] = quantize_input_value(spec, (raw[i] - fspec.input_mean[c]) / fspec.input_std[c]);
  }
}

Status qrun_backbone(const QModelSpec& spec, const int8_t* input, int8_t* arena, uint32_t arena_bytes, int8_t* features,
                     QLayerHook hook, void* user) {
  if (!input || !arena || !features) return kErrBadArgument;
  const uint32_t half = arena_bytes / 2;
  int8_t* cur = arena;
  int8_t* nxt = arena + half;
  uint16_t T = spec.input_len, C = spec.input_channels;
  if ((uint32_t)T * C > half) return kErrArenaTooSmall;
  memcpy(cur, input, (uint32_t)T * C);
  for (uint16_t l = 0; l < spec.num_layers; ++l) {
    const QLayerSpec& L = spec.layers[l];
    uint16_t To = 0, Co = 0;
    if (!qlayer_out_shape(L, T, C, &To, &Co) || (uint32_t)To * Co > half) return kErrBadModel;
    switch (L.type) {
      case kConv1D: qconv1d_fast(L, cur, T, nxt); break;
      case kDepthwiseConv1D: qdepthwise1d_fast(L, cur, T, nxt); break;
      case kDense: qdense_fast(L, cur, nxt); break;
      case kMaxPool1D: qmaxpool1d_fast(L, cur, T, C, nxt); break;
      case kGlobalAvgPool1D: qmean1d(L, cur, T, C, nxt); break;
      default: return kErrBadModel;
    }
    int8_t* t = cur;
    cur = nxt;
    nxt = t;
    T = To;
    C = Co;
    if (hook) hook(l, cur, (uint32_t)T * C, user);
  }
  if (T != 1 || C != spec.feature_dim) return kErrBadModel;
  memcpy(features, cur, C);
  return kOk;
}

void qhead_quantize(QHeadView& h, const float* W, const float* b, uint16_t num_classes) {
  const uint32_t nw = (uint32_t)num_classes * h.feature_dim;
  float m = 0.0f;
  for (uint32_t i = 0; i < nw; ++i) m = fabsf(W[i]) > m ? fabsf(W[i]) : m;
  // a zero head (Lab 1 learns its head from zero) has no range: take Glorot-uniform's, sqrt(6 / (in + out))
  if (!(m > 0.0f)) m = sqrtf(6.0f / (float)(h.feature_dim + num_classes));
  h.w_scale = m / 127.0f;
  h.num_classes = num_classes;
  const float sb = h.w_scale * h.x_scale;
  for (uint32_t i = 0; i < nw; ++i) {
    float r = rintf(W[i] / h.w_scale);  // round half to even, as numpy's round
    r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
    h.Wq[i] = (int8_t)(int32_t)r;
    h.latW[i] = r;
  }
  for (uint16_t c = 0; c < num_classes; ++c) {
    const float r = rintf(b[c] / sb);
    h.bq[c] = (int32_t)r;
    h.latb[c] = r;
  }
}

void qhead_resize(QHeadView& h, uint16_t num_classes) {
  for (uint16_t c = h.num_classes; c < num_classes; ++c) {
    const uint32_t r = (uint32_t)c * h.feature_dim;
    memset(h.Wq + r, 0, h.feature_dim);
    for (uint16_t f = 0; f < h.feature_dim; ++f) h.latW[r + f] = 0.0f;
    h.bq[c] = 0;
    h.latb[c] = 0.0f;
  }
  h.num_classes = num_classes;
}

int qhead_forward(QHeadView& h, const int8_t* x, uint16_t y, float* lin, float* sum) {
  const uint16_t nc = h.num_classes, fd = h.feature_dim;
  const float s = h.w_scale * h.x_scale;
  for (uint16_t c = 0; c < nc; ++c) {
    const int8_t* w = h.Wq + (uint32_t)c * fd;
    int32_t acc = h.bq[c];
    for (uint16_t f = 0; f < fd; ++f) acc += (int32_t)w[f] * ((int32_t)x[f] - h.x_zero);
    h.probs[c] = (float)acc * s;
  }
  return softmax_loss(h.probs, nc, y, lin, sum);
}

// latent -> int8 / int32 tensors (round half to even; the kernel clamped to [-127, 127] as ch02's).
static void qhead_requantize(QHeadView& h) {
  const uint32_t nw = (uint32_t)h.num_classes * h.feature_dim;
  for (uint32_t i = 0; i < nw; ++i) {
    float r = h.latW[i];
    r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
    h.latW[i] = r;
    h.Wq[i] = (int8_t)(int32_t)rintf(r);
  }
  for (uint16_t c = 0; c < h.num_classes; ++c) {
    float r = h.latb[c];
    r = r > 2.0e9f ? 2.0e9f : (r < -2.0e9f ? -2.0e9f : r);
    h.latb[c] = r;
    h.bq[c] = (int32_t)rintf(r);
  }
}

Status qhead_train(QHeadView& h, StoreView& s, const int8_t* qfeatures, const TrainConfig& cfg, bool qas,
                   EpochCallback cb, void* user, uint32_t* steps) {
  *steps = 0;
  if (!sgd_config_ok(cfg) || cfg.mode != kTrainFull || !qfeatures) return kErrBadArgument;
  uint32_t n = 0;
  const Status sel = select_training_samples(s, cfg.use_replay, h.num_classes, &n);
  if (sel != kOk) return sel;
  const uint16_t nc = h.num_classes, fd = h.feature_dim;
  const uint32_t nw = (uint32_t)nc * fd;
  // dL/dWq = s_W dL/dW; QAS: / s_W^2.  dL/dbq = s_W s_x dL/db; QAS: / (s_W s_x)^2.
  const float sw = h.w_scale, sb = h.w_scale * h.x_scale;
  const float kw = qas ? 1.0f / sw : sw;
  const float kb = qas ? 1.0f / sb : sb;
  memset(h.vW, 0, sizeof(float) * nw);
  memset(h.vb, 0, sizeof(float) * nc);
  struct Trainer {
    QHeadView& h;
    const StoreView& s;
    const int8_t* qfeatures;
    const TrainConfig& cfg;
    uint32_t nw;
    float kw, kb;
    void begin_batch() {
      memset(h.gW, 0, sizeof(float) * nw);
      memset(h.gb, 0, sizeof(float) * h.num_classes);
    }
    int sample(uint32_t idx, float* lin, float* sum) {
      const uint16_t fd = h.feature_dim, y = s.labels[idx];
      const int8_t* x = qfeatures + idx * fd;
      const int pred = qhead_forward(h, x, y, lin, sum);
      h.probs[y] -= 1.0f;  // dL/dz = p - onehot
      for (uint16_t f = 0; f < fd; ++f) h.xr[f] = h.x_scale * (float)((int32_t)x[f] - h.x_zero);
      for (uint16_t c = 0; c < h.num_classes; ++c) {
        h.gb[c] += h.probs[c];
        axpy(h.gW + (uint32_t)c * fd, h.probs[c], h.xr, fd);
      }
      return pred;
    }
    void step(float inv_m) {
      sgd_momentum(h.latW, h.vW, h.gW, nw, inv_m * kw, cfg.weight_decay, cfg.momentum, cfg.lr);
      sgd_momentum(h.latb, h.vb, h.gb, h.num_classes, inv_m * kb, 0.0f, cfg.momentum, cfg.lr);
      qhead_requantize(h);
    }
    bool epoch_done(const EpochResult& r) {
      return is_finite(r.loss) && all_finite(h.latW, nw) && all_finite(h.latb, h.num_classes);
    }
  } t{h, s, qfeatures, cfg, nw, kw, kb};
  return train_epochs(s, n, cfg, t, cb, user, steps);
}

Status qhead_evaluate(QHeadView& h, const StoreView& s, const int8_t* qfeatures, bool use_replay, EvalResult* out,
                      uint16_t* confusion) {
  if (!qfeatures) return kErrBadArgument;
  return evaluate_store(
      s, use_replay, h.num_classes, h.max_classes,
      [&h, qfeatures](uint32_t i, uint16_t y, float* lin, float* sum) {
        return qhead_forward(h, qfeatures + i * h.feature_dim, y, lin, sum);
      },
      out, confusion);
}

}  // namespace odl
ODL_NUMERICS_END
