// odl_imu_nano33.cpp - see odl_imu_nano33.h. Compiles to nothing unless it is built for the
// Nano's mbed core with both IMU libraries on the include path, so a sketch that does not use
// the IMU (examples/TrainHead) builds with the engine library alone ("Add .ZIP Library" does not
// install depends=); a sketch that includes odl_imu_nano33.h without them gets its #error.
#if defined(ARDUINO_ARCH_MBED) && __has_include(<Arduino_LSM9DS1.h>) && __has_include(<Arduino_BMI270_BMM150.h>)
#include "odl_imu_nano33.h"

#include <Arduino_BMI270_BMM150.h>
#include <Arduino_LSM9DS1.h>
#include <Wire.h>
#include <string.h>

namespace {
const uint32_t kPeriodUs = 40000;  // 25 Hz
}  // namespace

bool Nano33Imu::answers(uint8_t addr) {
  Wire1.beginTransmission(addr);
  return Wire1.endTransmission() == 0;
}

bool Nano33Imu::start(odl::ImuRevision rev) {
  if (rev == odl::kImuRev1) return IMU_LSM9DS1.begin() != 0;
  if (rev == odl::kImuRev2) return IMU_BMI270_BMM150.begin() != 0;
  return false;
}

bool Nano33Imu::begin() {
  Wire1.begin();
  rev_ = static_cast<Revision>(odl::probe_imu(*this, kProbeAttempts, kProbeWaitMs));
  return rev_ != kNone;
}

bool Nano33Imu::ready() { return rev_ != kNone || begin(); }

const char* Nano33Imu::board_name() const {
  switch (rev_) {
    case kRev1: return "rev1";
    case kRev2: return "rev2";
    default: return "none";
  }
}

// Adds every sample the sensor has ready to the averages (each library reports accel and gyro
// availability separately; the LSM9DS1 runs both at 119 Hz, the BMI270 at 100 Hz).
void Nano33Imu::poll_sensor() {
  float v[3];
  if (rev_ == kRev1) {
    if (IMU_LSM9DS1.accelerationAvailable() && IMU_LSM9DS1.readAcceleration(v[0], v[1], v[2])) accel_.add(v);
    if (IMU_LSM9DS1.gyroscopeAvailable() && IMU_LSM9DS1.readGyroscope(v[0], v[1], v[2])) {
      for (int k = 0; k < 3; ++k) v[k] = odl::lsm9ds1_gyro_dps(v[k]);
      gyro_.add(v);
    }
  } else if (rev_ == kRev2) {
    if (IMU_BMI270_BMM150.accelerationAvailable() && IMU_BMI270_BMM150.readAcceleration(v[0], v[1], v[2]))
      accel_.add(v);
    if (IMU_BMI270_BMM150.gyroscopeAvailable() && IMU_BMI270_BMM150.readGyroscope(v[0], v[1], v[2])) gyro_.add(v);
  }
}

// The latest registers, when no new sample arrived within a tick (the sensor stalled).
bool Nano33Imu::read_now(float* out) {
  float ax = 0, ay = 0, az = 0, gx = 0, gy = 0, gz = 0;
  int ok = 0;
  if (rev_ == kRev1) {
    ok = IMU_LSM9DS1.readAcceleration(ax, ay, az) && IMU_LSM9DS1.readGyroscope(gx, gy, gz);
    gx = odl::lsm9ds1_gyro_dps(gx);
    gy = odl::lsm9ds1_gyro_dps(gy);
    gz = odl::lsm9ds1_gyro_dps(gz);
  } else if (rev_ == kRev2) {
    ok = IMU_BMI270_BMM150.readAcceleration(ax, ay, az) && IMU_BMI270_BMM150.readGyroscope(gx, gy, gz);
  }
  out[0] = ax;
  out[1] = ay;
  out[2] = az;  // g
  out[3] = gx;
  out[4] = gy;
  out[5] = gz;  // deg/s
  return ok != 0;
}

bool Nano33Imu::read_sample(float* out) {
  if (!ready()) return false;
  uint32_t now = micros();
  // (Re)start the schedule if this is the first sample or the caller fell far behind; the
  // averages then start afresh too.
  if (!scheduled_ || static_cast<int32_t>(now - next_us_) > static_cast<int32_t>(5 * kPeriodUs)) {
    next_us_ = now + kPeriodUs;
    scheduled_ = true;
    accel_.reset();
    gyro_.reset();
  }
  while (static_cast<int32_t>(micros() - next_us_) < 0) poll_sensor();
  poll_sensor();
  next_us_ += kPeriodUs;
  float now_sample[6];
  const bool have_accel = accel_.count() > 0, have_gyro = gyro_.count() > 0;
  if (!have_accel || !have_gyro) {
    if (!read_now(now_sample)) return false;
  }
  if (!accel_.take(out)) memcpy(out, now_sample, 3 * sizeof(float));
  if (!gyro_.take(out + 3)) memcpy(out + 3, now_sample + 3, 3 * sizeof(float));
  return true;
}

const char* Nano33Imu::read_window(const char* /*class_hint*/, bool /*for_predict*/, float* out, size_t n,
                                   const char** truth) {
  *truth = nullptr;  // a real user: the board does not know the true class
  if (!ready()) return "no IMU found: neither LSM9DS1 (Rev1) nor BMI270 (Rev2) answered on I2C";
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

#endif  // ARDUINO_ARCH_MBED && both IMU libraries
