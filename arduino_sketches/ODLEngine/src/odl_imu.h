// odl_imu.h - the portable part of reading a 6-axis IMU (accel g, gyro deg/s) at the model's
// 25 Hz: unit conversion fixes, the anti-alias average, and the revision probe with retries.
// Everything here runs on the host too (tests/engine/test_unit.cpp); the Nano 33 BLE glue that
// talks to the sensor libraries is nano33ble/odl_imu_nano33.*.
#ifndef ODL_IMU_H
#define ODL_IMU_H

#include <stdint.h>

#include "odl_numerics.h"

ODL_NUMERICS_BEGIN
namespace odl {

// Arduino_LSM9DS1 (Rev1) converts the gyroscope with 2000 / 32768 dps per LSB, but the LSM9DS1
// datasheet (DocID025715, Table 3, G_So at FS = +-2000 dps) gives 70 mdps/LSB: the library's
// rates are 12.5 % low (the same error was fixed in Arduino_LSM6DS3). The BMI270 (Rev2) library
// uses 2000 / 32768 (datasheet: 16.4 LSB/dps, within 0.1 %).
static const float kLsm9ds1LibraryDpsPerLsb = 2000.0f / 32768.0f;
static const float kLsm9ds1DatasheetDpsPerLsb = 0.070f;

// The rate in deg/s of an Arduino_LSM9DS1 readGyroscope() value.
inline float lsm9ds1_gyro_dps(float library_dps) {
  return library_dps * (kLsm9ds1DatasheetDpsPerLsb / kLsm9ds1LibraryDpsPerLsb);
}

// Anti-alias decimation: the sensor runs faster than the model (LSM9DS1 119 Hz, BMI270 100 Hz);
// every sensor sample is added here and each 25 Hz sample is the mean of the samples since the
// previous one (a boxcar low-pass: a 20 Hz tone, above the 12.5 Hz Nyquist limit, keeps ~1/4 of
// its amplitude instead of folding back at full amplitude as with latest-sample decimation).
template <uint8_t Channels>
class SampleAverager {
 public:
  SampleAverager() { reset(); }
  void reset() {
    for (uint8_t c = 0; c < Channels; ++c) sum_[c] = 0.0f;
    count_ = 0;
  }
  void add(const float* sample) {
    for (uint8_t c = 0; c < Channels; ++c) sum_[c] += sample[c];
    ++count_;
  }
  uint16_t count() const { return count_; }
  // Writes the mean of the samples added since the last take and starts over; false if none.
  bool take(float* out) {
    if (count_ == 0) return false;
    const float inv = 1.0f / (float)count_;
    for (uint8_t c = 0; c < Channels; ++c) out[c] = sum_[c] * inv;
    reset();
    return true;
  }

 private:
  float sum_[Channels];
  uint16_t count_;
};

enum ImuRevision { kImuNone = 0, kImuRev1 = 1, kImuRev2 = 2 };

// What the revision probe needs from the board (Nano 33 BLE: Wire1 and the two IMU libraries).
class ImuBus {
 public:
  virtual bool answers(uint8_t i2c_address) = 0;  // an I2C device ACKs at this address
  virtual bool start(ImuRevision rev) = 0;        // the sensor library's begin()
  virtual void wait_ms(uint32_t ms) = 0;

 protected:
  ~ImuBus() {}
};

static const uint8_t kLsm9ds1AccelGyroAddr = 0x6B;  // Rev1
static const uint8_t kBmi270Addr = 0x68;            // Rev2

// Probes for the Rev1 then the Rev2 IMU up to `attempts` times, waiting between attempts (the
// sensor may still be powering up, or the bus may glitch once): a single missed probe must not
// leave the board without an IMU until reset.
inline ImuRevision probe_imu(ImuBus& bus, uint8_t attempts, uint32_t wait_between_ms) {
  for (uint8_t a = 0; a < attempts; ++a) {
    if (a) bus.wait_ms(wait_between_ms);
    if (bus.answers(kLsm9ds1AccelGyroAddr) && bus.start(kImuRev1)) return kImuRev1;
    if (bus.answers(kBmi270Addr) && bus.start(kImuRev2)) return kImuRev2;
  }
  return kImuNone;
}

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_IMU_H
