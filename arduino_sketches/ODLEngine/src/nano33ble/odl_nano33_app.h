// odl_nano33_app.h - everything a lab sketch runs on the Arduino Nano 33 BLE Sense
// (Rev1 or Rev2), so each .ino stays a few lines: the engine sized by the sketch's model
// header, the run-time-detected IMU, two-slot flash storage, the serial protocol over USB,
// and the Edge Impulse forwarder mode (ODL_STREAM_AT_BOOT).
//
//   static odl::Nano33App<odl::Engine<...>, ODL_INPUT_LEN * ODL_INPUT_CHANNELS> app(ODL_STORAGE_SLOT_BYTES);
//   void setup() { app.setup(kOdlModel, ODL_FIRMWARE_VERSION, ODL_STREAM_AT_BOOT); }
//   void loop() { app.loop(); }
//
// Board-only (mbed core, both IMU libraries: see odl_imu_nano33.h): host, qemu and
// virtual-board builds never include it.
#ifndef ODL_NANO33_APP_H
#define ODL_NANO33_APP_H

#include <Arduino.h>
#include <mbed_stats.h>

#include "odl_engine.h"
#include "odl_flash_iap.h"
#include "odl_imu_nano33.h"
#include "odl_protocol.h"
#include "odl_storage.h"

namespace odl {

// USB serial as the protocol's byte stream.
class SerialIo : public Io {
 public:
  int read() override { return Serial.available() > 0 ? Serial.read() : -1; }
  void write(const char* data, size_t n) override { Serial.write(reinterpret_cast<const uint8_t*>(data), n); }
};

inline uint32_t nano33_clock_us() { return static_cast<uint32_t>(micros()); }

// Free heap bytes from mbed's statistics, or -1 where the core was built without them.
inline int32_t nano33_free_ram() {
  mbed_stats_heap_t h;
  mbed_stats_heap_get(&h);
  if (h.reserved_size == 0) return -1;
  return static_cast<int32_t>(h.reserved_size - h.current_size);
}

template <class EngineT, size_t WindowFloats>
class Nano33App {
 public:
  explicit Nano33App(uint32_t storage_slot_bytes) : flash_(storage_slot_bytes), adapter_(engine_, &flash_) {}

  // Starts serial, IMU, engine and storage. Failures do not stop the sketch: the protocol
  // reports them (no IMU: RECORD/PREDICT/STREAM reply error 12 SENSOR; engine: HELLO error 9
  // ENGINE; flash: SAVE/LOAD error 11 STORAGE), so the host can tell the student what is wrong.
  void setup(const ModelSpec& model, const char* firmware_version, bool stream_at_boot) {
    Serial.begin(115200);
    pinMode(LED_BUILTIN, OUTPUT);
    imu_.begin();
    engine_.begin(model);
    engine_.set_clock(nano33_clock_us);
    if (!flash_.begin()) adapter_.set_storage(nullptr);
    BoardHooks hooks;
    hooks.micros = nano33_clock_us;
    hooks.free_ram = nano33_free_ram;
    static Protocol protocol(adapter_, imu_, io_, firmware_version, hooks);
    proto_ = &protocol;
    streaming_ = stream_at_boot;
    // no banner here: on USB nobody listens yet; loop() sends it when a host opens the port
  }

  // Edge Impulse forwarder mode streams samples until the host sends its first byte; then
  // the protocol takes over for good.
  void loop() {
    proto_->host_connected(static_cast<bool>(Serial));  // USB CDC: true while the host asserts DTR
    if (streaming_ && Serial.available() == 0) {
      stream_one_sample();
      return;
    }
    streaming_ = false;
    proto_->poll();
  }

  EngineT& engine() { return engine_; }
  Nano33Imu& imu() { return imu_; }

 private:
  void stream_one_sample() {
    float s[6];
    if (!imu_.read_sample(s)) {
      streaming_ = false;
      return;
    }
    char line[6 * 20 + 4];
    size_t n = 0;
    for (int k = 0; k < 6; ++k) {
      if (k) line[n++] = ',';
      n += format_float(s[k], line + n);
    }
    line[n++] = '\r';
    line[n++] = '\n';
    io_.write(line, n);
  }

  EngineT engine_;
  Nano33Imu imu_;
  FlashIAPStorage flash_;
  EngineAdapter<EngineT, WindowFloats> adapter_;
  SerialIo io_;
  Protocol* proto_ = nullptr;
  bool streaming_ = false;
};

}  // namespace odl

#endif  // ODL_NANO33_APP_H
