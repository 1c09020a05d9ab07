// session_host.cpp - the Protocol dispatcher with a real odl::Engine (lab1_motion's backbone, but
// MaxClasses = 24 so that the confusion matrix cannot fit one line) and a scripted host.
// Built and run by tests/test_protocol.py.
//
//   session_host < script    each script line is one request; it is delivered after the previous
//                            request got its final reply, except lines starting with '~', which
//                            arrive *while* the previous request runs (the host did not wait)
//   session_host banner      the boot banner against a host opening and closing the port
//
// The sensor returns deterministic synthetic windows (a different pattern per class name) and
// fails for class names starting with "fail" (no such recording / IMU gone).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <string>
#include <vector>

#include "ODLEngine.h"
#include "odl_model_data.h"
#include "odl_protocol.h"

namespace {

typedef odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, 24, 128> EngineT;
EngineT engine;

class PatternSensor : public odl::Sensor {
 public:
  const char* board_name() const override { return "session"; }
  const char* read_window(const char* hint, bool, float* out, size_t n, const char** truth) override {
    if (hint && strncmp(hint, "fail", 4) == 0) return "no recording of that class";
    uint32_t h = 2166136261u;
    for (const char* p = hint ? hint : ""; *p; ++p) h = (h ^ (uint8_t)*p) * 16777619u;
    ++count_;
    for (size_t i = 0; i < n; ++i) {
      const float t = (float)(i / 6), c = (float)(i % 6);
      out[i] = 0.8f * sinf(0.05f * t * (float)(1 + h % 11) + c * (float)(h % 5)) + 0.01f * (float)(count_ % 7);
    }
    *truth = nullptr;
    return nullptr;
  }
  bool read_sample(float* out) override {
    for (int k = 0; k < 6; ++k) out[k] = 0.0f;
    return true;
  }

 private:
  uint32_t count_ = 0;
};

// Bytes the protocol may read while it runs a command (the '~' lines), and stdout.
class ScriptIo : public odl::Io {
 public:
  std::string during;
  size_t pos = 0;
  int read() override { return pos < during.size() ? (uint8_t)during[pos++] : -1; }
  void write(const char* d, size_t n) override { fwrite(d, 1, n, stdout); }
  void flush() override { fflush(stdout); }
};

}  // namespace

int main(int argc, char** argv) {
  static PatternSensor sensor;
  static ScriptIo io;
  if (engine.begin(kOdlModel, 1) != odl::kOk) return 3;
  static odl::RamStorage<16384> storage;
  static odl::EngineAdapter<EngineT, ODL_INPUT_LEN * ODL_INPUT_CHANNELS> adapter(engine, &storage);
  static odl::Protocol proto(adapter, sensor, io, "session");
  if (argc > 1 && strcmp(argv[1], "banner") == 0) {
    const bool dtr[] = {false, false, true, true, true, false, false, true};
    for (bool open : dtr) {
      printf("dtr=%d\n", open ? 1 : 0);
      proto.host_connected(open);
    }
    return 0;
  }
  std::vector<std::string> lines;
  char buf[4096];
  while (fgets(buf, sizeof buf, stdin)) lines.push_back(buf);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i][0] == '~') continue;  // delivered during the previous request
    io.during.clear();
    io.pos = 0;
    for (size_t j = i + 1; j < lines.size() && lines[j][0] == '~'; ++j) io.during += lines[j].substr(1);
    for (char c : lines[i]) proto.feed((uint8_t)c);
    while (io.pos < io.during.size()) proto.feed((uint8_t)io.during[io.pos++]);  // what was left unread
  }
  fflush(stdout);
  return 0;
}
