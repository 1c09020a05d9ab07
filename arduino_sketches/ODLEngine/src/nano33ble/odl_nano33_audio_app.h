// odl_nano33_audio_app.h - what the Lab 2 sketch runs on the Arduino Nano 33 BLE Sense, so its
// .ino stays a few lines: the audio engine (odl_audio_engine.h), the PDM microphone
// (odl_pdm_nano33.h), two-slot flash storage and the serial protocol over USB.
//
//   static odl::Nano33AudioApp<odl::AudioEngine<...>> app(ODL_STORAGE_SLOT_BYTES);
//   void setup() { app.setup(kClassNames, ODL_NUM_CLASSES, ODL_FIRMWARE_VERSION); }
//   void loop() { app.loop(); }
//
// Board-only (mbed core + the core's PDM library).
#ifndef ODL_NANO33_AUDIO_APP_H
#define ODL_NANO33_AUDIO_APP_H

#include <Arduino.h>
#include <mbed_stats.h>

#include "../odl_audio_engine.h"
#include "../odl_protocol.h"
#include "../odl_storage.h"
#include "odl_flash_iap.h"
#include "odl_pdm_nano33.h"

namespace odl {

class AudioSerialIo : public Io {
 public:
  int read() override { return Serial.available() > 0 ? Serial.read() : -1; }
  void write(const char* data, size_t n) override { Serial.write(reinterpret_cast<const uint8_t*>(data), n); }
};

inline uint32_t nano33_audio_clock_us() { return static_cast<uint32_t>(micros()); }

inline int32_t nano33_audio_free_ram() {
  mbed_stats_heap_t h;
  mbed_stats_heap_get(&h);
  if (h.reserved_size == 0) return -1;
  return static_cast<int32_t>(h.reserved_size - h.current_size);
}

template <class EngineT>
class Nano33AudioApp {
 public:
  explicit Nano33AudioApp(uint32_t storage_slot_bytes) : flash_(storage_slot_bytes) {}

  // Failures do not stop the sketch: no microphone -> RECORD/PREDICT error 12 SENSOR; no flash
  // -> SAVE/LOAD error 11 STORAGE.
  void setup(const char* const* class_names, uint16_t num_classes, const char* firmware_version) {
    Serial.begin(115200);
    pinMode(LED_BUILTIN, OUTPUT);
    mic_.begin();
    engine_.begin(class_names, num_classes, flash_.begin() ? &flash_ : nullptr);
    engine_.set_clock(nano33_audio_clock_us);
    BoardHooks hooks;
    hooks.micros = nano33_audio_clock_us;
    hooks.free_ram = nano33_audio_free_ram;
    static Protocol protocol(engine_, mic_, io_, firmware_version, hooks);
    proto_ = &protocol;
  }

  void loop() {
    proto_->host_connected(static_cast<bool>(Serial));  // USB CDC: true while the host asserts DTR
    proto_->poll();
  }

  EngineT& engine() { return engine_; }

 private:
  EngineT engine_;
  Nano33Microphone mic_;
  FlashIAPStorage flash_;
  AudioSerialIo io_;
  Protocol* proto_ = nullptr;
};

}  // namespace odl

#endif  // ODL_NANO33_AUDIO_APP_H
