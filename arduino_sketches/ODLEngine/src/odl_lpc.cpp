// odl_lpc.cpp - see odl_lpc.h.
#include "odl_lpc.h"
#include "odl_numerics.h"

#include <math.h>
#include <string.h>

ODL_NUMERICS_BEGIN
namespace odl {

static const float kPi = 3.14159265358979f;

// sin(pi x) from IEEE-754 float operations only (glibc's and newlib's sinf/cosf differ in the last
// bit, and the window and resampler taps must be the same on the host, under qemu and on the
// board): reduce to |y| <= 1/2 by periodicity and sin(pi (1 - y)) = sin(pi y), then the Taylor
// series of sin(z), z = pi y, to z^13 / 13! (truncation < 6e-8 at z = pi / 2).
float sin_pi(float x) {
  float y = x - 2.0f * (float)(int32_t)(x * 0.5f + (x >= 0.0f ? 0.5f : -0.5f));  // [-1, 1]
  if (y > 0.5f) y = 1.0f - y;
  if (y < -0.5f) y = -1.0f - y;
  const float z = kPi * y, z2 = z * z;
  float t = 1.0f / 6227020800.0f;  // 1 / 13!
  t = t * z2 - 1.0f / 39916800.0f;
  t = t * z2 + 1.0f / 362880.0f;
  t = t * z2 - 1.0f / 5040.0f;
  t = t * z2 + 1.0f / 120.0f;
  t = t * z2 - 1.0f / 6.0f;
  t = t * z2 + 1.0f;
  return z * t;
}

// cos(pi x) = sin(pi (1/2 - x))
static float cos_pi(float x) { return sin_pi(0.5f - x); }

void lpc_hamming(float* w, uint16_t n) {
  for (uint16_t k = 0; k < n; ++k) w[k] = 0.54f - 0.46f * cos_pi(2.0f * (float)k / (float)(n - 1));
}

// Compensated (Kahan) summation: a plain float sum of 256 products loses ~1e-5 of r[0], and
// Levinson-Durbin multiplies that by the condition number of the Toeplitz matrix (~1e4 for a
// vowel band-limited by the resampler): 1e-2 errors in the cepstra. Kahan keeps the sum to ~1 ulp
// for 4 float operations per product (no double: the FPU is single precision). The compensation
// survives the build: the library is compiled without -ffast-math and without contraction.
void lpc_autocorrelation(const float* x, uint16_t n, uint16_t order, float* r) {
  for (uint16_t k = 0; k <= order; ++k) {
    float sum = 0.0f, comp = 0.0f;
    for (uint16_t i = 0; i + k < n; ++i) {
      const float y = x[i] * x[i + k] - comp;
      const float t = sum + y;
      comp = (t - sum) - y;
      sum = t;
    }
    r[k] = sum;
  }
}

float lpc_levinson(const float* r, uint16_t order, float* a, float* k) {
  float prev[kLpcOrder + 1];
  for (uint16_t j = 0; j <= order; ++j) a[j] = 0.0f;
  a[0] = 1.0f;
  if (k)
    for (uint16_t j = 0; j < order; ++j) k[j] = 0.0f;
  float err = r[0];
  if (!(err > kLpcSilenceR0) || order > kLpcOrder) return 0.0f;
  for (uint16_t i = 1; i <= order; ++i) {
    float acc = r[i];
    for (uint16_t j = 1; j < i; ++j) acc += a[j] * r[i - j];
    const float ki = -acc / err;
    for (uint16_t j = 0; j < i; ++j) prev[j] = a[j];
    for (uint16_t j = 1; j < i; ++j) a[j] = prev[j] + ki * prev[i - j];
    a[i] = ki;
    if (k) k[i - 1] = ki;
    err *= 1.0f - ki * ki;
  }
  return err;
}

void lpc_to_cepstrum(const float* a, uint16_t order, uint16_t n_ceps, float* c) {
  // c[n - 1] holds c_n
  for (uint16_t n = 1; n <= n_ceps; ++n) {
    float acc = n <= order ? -a[n] : 0.0f;
    for (uint16_t k = 1; k < n; ++k)
      if (n - k <= order) acc -= ((float)k / (float)n) * c[k - 1] * a[n - k];
    c[n - 1] = acc;
  }
}

Status LpcFrontEnd::begin(uint32_t rate_hz) {
  if (rate_hz != 10000 && rate_hz != 16000) return kErrBadArgument;
  rate_ = rate_hz;
  samples_in_ = frames_ = 0;
  fill_ = 0;
  hist_pos_ = 0;
  phase_ = 5;  // d = 8 m - 5 j with m = 0, j = -1
  memset(hist_, 0, sizeof(hist_));
  lpc_hamming(window_, kLpcFrameLen);
  // h[n] = L 2 fc sinc(2 fc (n - (N - 1) / 2)) hamming(N)[n], fc = cutoff / 80 kHz
  const uint16_t N = kResampleUp * kResampleTapsPerPhase;
  const float fc = kResampleCutoffHz / (16000.0f * kResampleUp);
  for (uint16_t n = 0; n < N; ++n) {
    const float t = (float)n - (float)(N - 1) / 2.0f;
    const float arg = 2.0f * fc * t;
    const float sinc = arg == 0.0f ? 1.0f : sin_pi(arg) / (kPi * arg);
    const float w = 0.54f - 0.46f * cos_pi(2.0f * (float)n / (float)(N - 1));
    taps_[n] = (float)kResampleUp * 2.0f * fc * sinc * w;
  }
  return kOk;
}

void LpcFrontEnd::push(const float* x, uint32_t n, LpcFrameFn fn, void* user) {
  for (uint32_t s = 0; s < n; ++s) {
    ++samples_in_;
    if (rate_ == 10000) {
      push10k(x[s], fn, user);
      continue;
    }
    // input j arrives: emit every output m with 8 m <= 5 j (the length odlkit.audio gives)
    hist_pos_ = (uint16_t)((hist_pos_ + 1) % (kResampleTapsPerPhase + 1));
    hist_[hist_pos_] = x[s];
    phase_ -= kResampleUp;
    while (phase_ <= 0) {
      const uint16_t back = phase_ < 0 ? 1 : 0;  // output m uses input jm = j - back
      const uint16_t p = (uint16_t)(phase_ < 0 ? phase_ + kResampleUp : 0);
      float acc = 0.0f;
      for (uint16_t i = 0; i < kResampleTapsPerPhase; ++i) {
        const uint16_t idx =
            (uint16_t)((hist_pos_ + 2 * (kResampleTapsPerPhase + 1) - back - i) % (kResampleTapsPerPhase + 1));
        acc += taps_[p + kResampleUp * i] * hist_[idx];
      }
      push10k(acc, fn, user);
      phase_ += kResampleDown;
    }
  }
}

void LpcFrontEnd::push_int16(const int16_t* pcm, uint32_t n, LpcFrameFn fn, void* user) {
  for (uint32_t s = 0; s < n; ++s) {
    const float x = (float)pcm[s] * (1.0f / 32768.0f);
    push(&x, 1, fn, user);
  }
}

void LpcFrontEnd::push10k(float x, LpcFrameFn fn, void* user) {
  buf_[fill_++] = x;
  if (fill_ < kLpcFrameLen) return;
  analyse(fn, user);
  memmove(buf_, buf_ + kLpcShift, sizeof(float) * (kLpcFrameLen - kLpcShift));
  fill_ = kLpcFrameLen - kLpcShift;
}

void LpcFrontEnd::analyse(LpcFrameFn fn, void* user) {
  const uint32_t t0 = clock_ ? clock_() : 0;
  LpcFrame f;
  f.index = frames_++;
  float ms = 0.0f;
  for (uint16_t i = 0; i < kLpcFrameLen; ++i) {
    ms += buf_[i] * buf_[i];
    work_[i] = buf_[i] * window_[i];
  }
  ms /= (float)kLpcFrameLen;
  f.energy_db = 10.0f * log10f(ms + 1e-12f);  // reported only; the gate compares linear powers
  f.voiced = ms > gate_ms_;
  float r[kLpcOrder + 1], a[kLpcOrder + 1];
  lpc_autocorrelation(work_, kLpcFrameLen, kLpcOrder, r);
  lpc_levinson(r, kLpcOrder, a, nullptr);
  lpc_to_cepstrum(a, kLpcOrder, kLpcCeps, f.ceps);
  if (clock_) last_us_ = clock_() - t0;
  if (fn) fn(f, user);
}

void summarize_frames(const float* frames, uint16_t n, uint16_t coeffs, float* out) {
  float* mean = out;
  float* sd = out + coeffs;
  for (uint16_t c = 0; c < coeffs; ++c) mean[c] = sd[c] = 0.0f;
  if (n == 0) return;
  for (uint16_t t = 0; t < n; ++t)
    for (uint16_t c = 0; c < coeffs; ++c) mean[c] += frames[(uint32_t)t * coeffs + c];
  for (uint16_t c = 0; c < coeffs; ++c) mean[c] /= (float)n;
  for (uint16_t t = 0; t < n; ++t)
    for (uint16_t c = 0; c < coeffs; ++c) {
      const float d = frames[(uint32_t)t * coeffs + c] - mean[c];
      sd[c] += d * d;
    }
  for (uint16_t c = 0; c < coeffs; ++c) sd[c] = sqrtf(sd[c] / (float)n);
}

}  // namespace odl
ODL_NUMERICS_END
