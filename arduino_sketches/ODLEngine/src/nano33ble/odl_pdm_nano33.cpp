// odl_pdm_nano33.cpp - see odl_pdm_nano33.h. Compiles to nothing outside the Nano's mbed core.
#if defined(ARDUINO_ARCH_MBED) && __has_include(<PDM.h>)
#include "odl_pdm_nano33.h"

#include <PDM.h>
#include <string.h>

namespace odl {

namespace {
Nano33Microphone* g_mic = nullptr;
void pdm_isr() {
  if (g_mic) g_mic->on_pdm_data();
}
}  // namespace

bool Nano33Microphone::begin() {
  g_mic = this;
  fe_.begin(kRateHz);
  PDM.onReceive(pdm_isr);
  ok_ = PDM.begin(1, kRateHz) != 0;
  return ok_;
}

void Nano33Microphone::on_pdm_data() {
  int16_t tmp[256];
  int bytes = PDM.available();
  while (bytes > 0) {
    int take = bytes > (int)sizeof(tmp) ? (int)sizeof(tmp) : bytes;
    int got = PDM.read(tmp, take);
    if (got <= 0) break;
    bytes -= got;
    const uint16_t cap = sizeof(ring_) / sizeof(ring_[0]);
    for (int i = 0; i < got / 2; ++i) {
      const uint16_t next = (uint16_t)((head_ + 1) % cap);
      if (next == tail_) {
        overrun_ = true;  // the main loop fell behind: this sample is dropped
        break;
      }
      ring_[head_] = tmp[i];
      head_ = next;
    }
  }
}

bool Nano33Microphone::drain() {
  const uint16_t cap = sizeof(ring_) / sizeof(ring_[0]);
  while (tail_ != head_) {
    uint16_t n = 0;
    while (tail_ != head_ && n < sizeof(chunk_) / sizeof(chunk_[0])) {
      chunk_[n++] = ring_[tail_];
      tail_ = (uint16_t)((tail_ + 1) % cap);
    }
    fe_.push_int16(chunk_, n, frame_cb, this);
  }
  if (overrun_) {
    overrun_ = false;
    return false;
  }
  return true;
}

void Nano33Microphone::frame_cb(const LpcFrame& f, void* user) {
  Nano33Microphone* m = static_cast<Nano33Microphone*>(user);
  memcpy(m->sample_, f.ceps, sizeof(m->sample_));
  m->sample_ready_ = true;
  if (!m->out_ || m->done_) return;
  if (f.voiced) {
    m->in_speech_ = true;
    m->silent_ = 0;
    if (m->frames_ < m->cap_frames_) {
      memcpy(m->out_ + (size_t)m->frames_ * kLpcCeps, f.ceps, sizeof(f.ceps));
      m->frames_++;
    }
    if (m->frames_ >= m->cap_frames_) m->done_ = true;
  } else if (m->in_speech_ && ++m->silent_ >= kTrailingSilentFrames) {
    if (m->frames_ >= kMinFrames)
      m->done_ = true;
    else {  // a click, not an utterance: listen on
      m->in_speech_ = false;
      m->frames_ = 0;
      m->silent_ = 0;
    }
  }
}

const char* Nano33Microphone::read_window(const char*, bool, float* out, size_t n, const char** truth) {
  *truth = nullptr;
  if (!ok_ && !begin()) return "the PDM microphone did not start (PDM.begin failed)";
  if (n < kLpcCeps) return "window buffer smaller than one frame";
  memset(out, 0, n * sizeof(float));
  tail_ = head_;  // only what is said from now on
  out_ = out;
  cap_frames_ = n / kLpcCeps;
  frames_ = silent_ = 0;
  in_speech_ = done_ = false;
  const uint32_t t0 = millis();
  while (!done_) {
    if (!drain()) {
      out_ = nullptr;
      return "audio samples were lost (the board fell behind the microphone); try again";
    }
    if (millis() - t0 > kListenMs) {
      out_ = nullptr;
      if (in_speech_ && frames_ >= kMinFrames) break;
      return "no speech heard within 4 s (energy gate -45 dBFS): speak closer to the microphone";
    }
  }
  out_ = nullptr;
  return nullptr;
}

bool Nano33Microphone::read_sample(float* out) {
  if (!ok_ && !begin()) return false;
  const uint32_t t0 = millis();
  sample_ready_ = false;
  while (!sample_ready_) {
    drain();
    if (millis() - t0 > 1000) return false;
  }
  memcpy(out, sample_, sizeof(sample_));
  return true;
}

}  // namespace odl

#endif
