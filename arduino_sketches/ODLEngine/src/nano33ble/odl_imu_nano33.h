// odl_imu_nano33.h - the IMU of the Arduino Nano 33 BLE Sense, Rev1 (LSM9DS1) or Rev2
// (BMI270 + BMM150), detected at run time, as an odl::Sensor: 25 Hz samples into 50-sample
// windows, accel in g and gyro in deg/s (ax ay az gx gy gz), each 25 Hz sample the average of
// the sensor's own 119 Hz / 100 Hz samples since the previous one (odl_imu.h).
//
// Needs both IMU libraries (Library Manager: Arduino_LSM9DS1, Arduino_BMI270_BMM150). Include
// their headers in the sketch before this one, so the Arduino IDE finds them:
//   #include <Arduino_BMI270_BMM150.h>
//   #include <Arduino_LSM9DS1.h>
//   #include <odl_nano33_app.h>
// Board-only: include it from a sketch, never from host code (it needs <Arduino.h>).
#ifndef ODL_IMU_NANO33_H
#define ODL_IMU_NANO33_H

#if !defined(ARDUINO_ARCH_MBED)
#error "odl_imu_nano33.h is the Arduino Nano 33 BLE (mbed core) IMU glue; select Tools > Board > Arduino Nano 33 BLE"
#endif
#if !__has_include(<Arduino_LSM9DS1.h>) || !__has_include(<Arduino_BMI270_BMM150.h>)
#error \
    "ODLEngine's Nano 33 BLE Sense IMU glue needs the Arduino_LSM9DS1 (Rev1) and Arduino_BMI270_BMM150 (Rev2) libraries: install both (Tools > Manage Libraries) and #include <Arduino_LSM9DS1.h> and <Arduino_BMI270_BMM150.h> in the sketch before <odl_nano33_app.h>"
#endif

#include <Arduino.h>

#include "odl_imu.h"
#include "odl_protocol.h"

class Nano33Imu : public odl::Sensor, private odl::ImuBus {
 public:
  enum Revision { kNone = odl::kImuNone, kRev1 = odl::kImuRev1, kRev2 = odl::kImuRev2 };
  static const uint8_t kProbeAttempts = 5;
  static const uint32_t kProbeWaitMs = 20;

  // Probes the internal I2C bus (Wire1) up to kProbeAttempts times: LSM9DS1 answers at 0x6B
  // (Rev1), BMI270 at 0x68 (Rev2); then starts that library. False if no IMU answered; every
  // later command that needs the IMU probes again.
  bool begin();
  Revision revision() const { return rev_; }

  const char* board_name() const override;
  // Records ODL_INPUT_LEN samples at 25 Hz (2 s); the built-in LED is on meanwhile.
  const char* read_window(const char* class_hint, bool for_predict, float* out, size_t n, const char** truth) override;
  // Waits for the next 40 ms tick, averaging every sensor sample meanwhile, then returns the
  // average (6 floats).
  bool read_sample(float* out) override;
  uint16_t channels() const override { return 6; }
  uint16_t sample_rate_hz() const override { return 25; }

 private:
  bool answers(uint8_t i2c_address) override;
  bool start(odl::ImuRevision rev) override;
  void wait_ms(uint32_t ms) override { delay(ms); }
  bool ready();  // re-probes when no IMU was found yet
  void poll_sensor();
  bool read_now(float* out);

  Revision rev_ = kNone;
  uint32_t next_us_ = 0;
  bool scheduled_ = false;
  odl::SampleAverager<3> accel_;
  odl::SampleAverager<3> gyro_;
};

#endif  // ODL_IMU_NANO33_H
