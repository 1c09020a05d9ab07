// odl_pdm_nano33.h - the PDM microphone of the Arduino Nano 33 BLE Sense (MP34DT05) as an
// odl::Sensor for Lab 2: the core's PDM library at 16 kHz mono, the engine's LPC front end
// (odl_lpc.h: resampled to 10 kHz, 25.6 ms frames every 6.4 ms, 12 LPC cepstra) and its energy
// gate. A window is one utterance: the voiced frames from the first one the gate passes until
// kTrailingSilentFrames unvoiced frames in a row (or MaxFrames frames); window_frames() says how
// many. Board-only (mbed core + PDM library); host, qemu and virtual-board builds never include it.
#ifndef ODL_PDM_NANO33_H
#define ODL_PDM_NANO33_H

#if !defined(ARDUINO_ARCH_MBED)
#error \
    "odl_pdm_nano33.h is the Arduino Nano 33 BLE (mbed core) microphone glue; select Tools > Board > Arduino Nano 33 BLE"
#endif

#include <Arduino.h>

#include "../odl_lpc.h"
#include "../odl_protocol.h"

namespace odl {

class Nano33Microphone : public Sensor {
 public:
  static const uint32_t kRateHz = 16000;
  static const uint16_t kTrailingSilentFrames = 8;  // 51 ms of silence ends an utterance
  static const uint16_t kMinFrames = 4;             // shorter bursts (clicks) are not utterances
  static const uint32_t kListenMs = 4000;           // RECORD / PREDICT give up after this long

  // Starts the PDM peripheral (false: the microphone did not start; RECORD then reports it).
  bool begin();
  const char* board_name() const override { return ok_ ? "sense-mic" : "none"; }
  const char* read_window(const char* class_hint, bool for_predict, float* out, size_t n, const char** truth) override;
  // STREAM: one 10 kHz frame's 12 cepstra per line is what a host can plot; here one sample is
  // the 12 cepstra of the next analysed frame.
  bool read_sample(float* out) override;
  uint16_t channels() const override { return kLpcCeps; }
  uint16_t sample_rate_hz() const override { return 156; }  // frames per second (6.4 ms)
  uint16_t window_frames() const override { return frames_; }

  // Called from the PDM interrupt (onReceive): copies the new samples into the ring.
  void on_pdm_data();

 private:
  static void frame_cb(const LpcFrame& f, void* user);
  // Feeds the samples received so far through the front end; returns false on a ring overrun.
  bool drain();

  LpcFrontEnd fe_;
  volatile uint16_t head_ = 0;  // written by the interrupt
  uint16_t tail_ = 0;
  volatile bool overrun_ = false;
  int16_t ring_[4096];  // 256 ms at 16 kHz
  int16_t chunk_[512];
  bool ok_ = false;
  // utterance collection (frame_cb)
  float* out_ = nullptr;
  size_t cap_frames_ = 0;
  uint16_t frames_ = 0;
  uint16_t silent_ = 0;
  bool in_speech_ = false;
  bool done_ = false;
  bool sample_ready_ = false;
  float sample_[kLpcCeps];
};

}  // namespace odl

#endif  // ODL_PDM_NANO33_H
