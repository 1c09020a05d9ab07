// odl_lpc.h - speech features on the device: the LPC cepstra of the JapaneseVowels data set,
// computed frame by frame from microphone audio (Lab 2). The Python reference is odlkit.audio
// (same definitions in float64; tests/test_lab2_engine.py checks the parity and its tolerance).
//
//   16 kHz PDM samples -> Resampler16to10 (polyphase FIR, up 5 / down 8) -> 10 kHz
//   -> frames of 256 samples (25.6 ms) every 64 (6.4 ms) -> Hamming window -> autocorrelation
//   r[0..12] -> Levinson-Durbin (A(z) = 1 + sum a_k z^-k) -> cepstrum c_1..c_12 of 1 / A(z),
//   plus the frame's mean square in dB re full scale for the energy gate (voice activity).
//
// No heap: every buffer is a member with a compile-time size. Portable C++14.
#ifndef ODL_LPC_H
#define ODL_LPC_H

#include "odl_numerics.h"
#include <stdint.h>

#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

static const uint16_t kLpcFrameLen = 256;  // 25.6 ms at 10 kHz
static const uint16_t kLpcShift = 64;      // 6.4 ms at 10 kHz
static const uint16_t kLpcOrder = 12;
static const uint16_t kLpcCeps = 12;
static const uint16_t kResampleUp = 5, kResampleDown = 8;
static const uint16_t kResampleTapsPerPhase = 24;      // odlkit.audio.RESAMPLE_TAPS_PER_PHASE
static const float kResampleCutoffHz = 4400.0f;        // odlkit.audio.RESAMPLE_CUTOFF_HZ
static const float kVadThresholdDb = -45.0f;           // odlkit.audio.VAD_THRESHOLD_DB
static const float kVadThresholdMs = 3.16227766e-05f;  // the same as a mean square: 10^(-45 / 10)
static const float kLpcSilenceR0 = 1e-10f;             // odlkit.audio.SILENCE_R0

// Symmetric Hamming window 0.54 - 0.46 cos(2 pi k / (n - 1)).
void lpc_hamming(float* w, uint16_t n);
// r[k] = sum_n x[n] x[n + k], k = 0..order.
void lpc_autocorrelation(const float* x, uint16_t n, uint16_t order, float* r);
// Levinson-Durbin on r[0..order]: a[0..order] (a[0] = 1), reflection k[0..order-1] (may be
// nullptr); returns the prediction error power. r[0] <= kLpcSilenceR0: flat model, returns 0.
float lpc_levinson(const float* r, uint16_t order, float* a, float* k);
// sin(pi x) from float operations only (bit-identical on every IEEE-754 target; ~1e-7 absolute).
float sin_pi(float x);
// c[0..n_ceps-1] = c_1..c_n of 1 / A(z): c_n = -a_n - sum_{k<n} (k / n) c_k a_{n-k}.
void lpc_to_cepstrum(const float* a, uint16_t order, uint16_t n_ceps, float* c);

// One analysed frame.
struct LpcFrame {
  uint32_t index;        // 0-based frame number since begin()
  float ceps[kLpcCeps];  // c_1..c_12
  float energy_db;       // 10 log10(mean square + 1e-12) re full scale
  bool voiced;           // energy_db > the gate threshold
};
typedef void (*LpcFrameFn)(const LpcFrame& f, void* user);

// Streaming front end: push full-scale samples (int16 / 32768) at 16 kHz or 10 kHz; every
// completed frame is analysed and handed to the callback.
class LpcFrontEnd {
 public:
  LpcFrontEnd() { begin(10000); }
  // Resets the stream; rate_hz 16000 (the PDM microphone, resampled) or 10000 (as is).
  Status begin(uint32_t rate_hz);
  // The gate as a mean square re full scale (10^(dB / 10)); default kVadThresholdMs (-45 dBFS).
  void set_gate(float mean_square) { gate_ms_ = mean_square; }
  void push(const float* x, uint32_t n, LpcFrameFn fn, void* user);
  void push_int16(const int16_t* pcm, uint32_t n, LpcFrameFn fn, void* user);
  uint32_t samples_in() const { return samples_in_; }
  uint32_t frames_out() const { return frames_; }
  uint32_t rate_hz() const { return rate_; }
  uint32_t last_frame_us() const { return last_us_; }
  void set_clock(ClockFn c) { clock_ = c; }

 private:
  void push10k(float x, LpcFrameFn fn, void* user);
  void analyse(LpcFrameFn fn, void* user);

  uint32_t rate_ = 10000;
  float gate_ms_ = kVadThresholdMs;
  uint32_t samples_in_ = 0, frames_ = 0, last_us_ = 0;
  ClockFn clock_ = nullptr;
  // resampler: prototype taps h[p + 5 i], input history ring, phase counter d = 8 m - 5 j
  float taps_[kResampleUp * kResampleTapsPerPhase];
  float hist_[kResampleTapsPerPhase + 1];
  uint16_t hist_pos_ = 0;
  int32_t phase_ = 5;
  // framing at 10 kHz
  float window_[kLpcFrameLen];
  float buf_[kLpcFrameLen];
  uint16_t fill_ = 0;
  float work_[kLpcFrameLen];
};

// Per-utterance summary of n frames (frames[t * coeffs + c]): out[c] = mean, out[coeffs + c] =
// population std (two passes, accumulated frame by frame; odlkit.audio.utterance_summary).
void summarize_frames(const float* frames, uint16_t n, uint16_t coeffs, float* out);

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_LPC_H
