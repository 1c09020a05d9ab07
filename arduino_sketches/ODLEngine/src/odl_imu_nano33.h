// odl_imu_nano33.h - the IMU of the Arduino Nano 33 BLE Sense, Rev1 (LSM9DS1) or Rev2
// (BMI270 + BMM150), detected at run time, as an odl::Sensor: fixed-rate sampling at
// 25 Hz into 50-sample windows, accel in g and gyro in deg/s (ax ay az gx gy gz).
// Board-only: include it from a sketch, never from host code (it needs <Arduino.h>).
#ifndef ODL_IMU_NANO33_H
#define ODL_IMU_NANO33_H

#include <Arduino.h>
#include <odl_protocol.h>

class Nano33Imu : public odl::Sensor {
 public:
  enum Revision { kNone = 0, kRev1 = 1, kRev2 = 2 };

  // Probes the internal I2C bus (Wire1): LSM9DS1 answers at 0x6B (Rev1), BMI270 at
  // 0x68 (Rev2); then starts that library. Returns false if no IMU answered.
  bool begin();
  Revision revision() const { return rev_; }

  const char* board_name() const override;
  // Records ODL_INPUT_LEN samples at 25 Hz (2 s); the built-in LED is on meanwhile.
  const char* read_window(const char* class_hint, bool for_predict, float* out, size_t n,
                          const char** truth) override;
  // Waits for the next 40 ms tick, then reads one sample (6 floats).
  bool read_sample(float* out) override;
  uint16_t channels() const override { return 6; }
  uint16_t sample_rate_hz() const override { return 25; }

 private:
  bool read_now(float* out);
  Revision rev_ = kNone;
  uint32_t next_us_ = 0;
  bool scheduled_ = false;
};

#endif  // ODL_IMU_NANO33_H
