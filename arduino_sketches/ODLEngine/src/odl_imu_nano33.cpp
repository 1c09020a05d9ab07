// odl_imu_nano33.cpp - see odl_imu_nano33.h. Both IMU libraries are compiled in; only the
// one whose chip answers on the bus is used. Compiled only for the Nano's mbed core: the
// host, qemu and virtual-board builds take every library source and get an empty unit here.
#if defined(ARDUINO_ARCH_MBED)
#include "odl_imu_nano33.h"

#include <Arduino_BMI270_BMM150.h>
#include <Arduino_LSM9DS1.h>
#include <Wire.h>

namespace {
const uint8_t kLsm9ds1AccelGyroAddr = 0x6B;  // Rev1
const uint8_t kBmi270Addr = 0x68;            // Rev2
const uint32_t kPeriodUs = 40000;            // 25 Hz

bool i2c_answers(uint8_t addr) {
  Wire1.beginTransmission(addr);
  return Wire1.endTransmission() == 0;
}
}  // namespace

bool Nano33Imu::begin() {
  Wire1.begin();
  bool rev1 = i2c_answers(kLsm9ds1AccelGyroAddr);
  bool rev2 = !rev1 && i2c_answers(kBmi270Addr);
  rev_ = kNone;
  if (rev1 && IMU_LSM9DS1.begin()) {
    rev_ = kRev1;
  } else if (rev2 && IMU_BMI270_BMM150.begin()) {
    rev_ = kRev2;
  }
  return rev_ != kNone;
}

const char* Nano33Imu::board_name() const {
  switch (rev_) {
    case kRev1: return "rev1";
    case kRev2: return "rev2";
    default: return "none";
  }
}

bool Nano33Imu::read_now(float* out) {
  float ax = 0, ay = 0, az = 0, gx = 0, gy = 0, gz = 0;
  int ok = 0;
  if (rev_ == kRev1) {
    ok = IMU_LSM9DS1.readAcceleration(ax, ay, az) && IMU_LSM9DS1.readGyroscope(gx, gy, gz);
  } else if (rev_ == kRev2) {
    ok = IMU_BMI270_BMM150.readAcceleration(ax, ay, az) && IMU_BMI270_BMM150.readGyroscope(gx, gy, gz);
  }
  out[0] = ax; out[1] = ay; out[2] = az;  // g
  out[3] = gx; out[4] = gy; out[5] = gz;  // deg/s
  return ok != 0;
}

bool Nano33Imu::read_sample(float* out) {
  if (rev_ == kNone) return false;
  uint32_t now = micros();
  // (Re)start the schedule if this is the first sample or the caller fell far behind.
  if (!scheduled_ || static_cast<int32_t>(now - next_us_) > static_cast<int32_t>(5 * kPeriodUs)) {
    next_us_ = now;
    scheduled_ = true;
  }
  while (static_cast<int32_t>(micros() - next_us_) < 0) {
  }
  next_us_ += kPeriodUs;
  return read_now(out);
}

const char* Nano33Imu::read_window(const char* /*class_hint*/, bool /*for_predict*/, float* out, size_t n,
                                   const char** truth) {
  *truth = nullptr;  // a real user: the board does not know the true class
  if (rev_ == kNone) return "no IMU found: neither LSM9DS1 (Rev1) nor BMI270 (Rev2) answered on I2C";
  if (n % 6 != 0) return "window size is not a multiple of 6 channels";
  scheduled_ = false;  // a window starts now, on a fresh 25 Hz schedule
  digitalWrite(LED_BUILTIN, HIGH);
  for (size_t t = 0; t < n / 6; ++t) {
    if (!read_sample(out + 6 * t)) {
      digitalWrite(LED_BUILTIN, LOW);
      return "IMU read failed";
    }
  }
  digitalWrite(LED_BUILTIN, LOW);
  return nullptr;
}

#endif  // ARDUINO_ARCH_MBED
