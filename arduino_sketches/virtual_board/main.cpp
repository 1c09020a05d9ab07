// main.cpp - the virtual board: the ODLEngine library and the serial protocol
// of a sketch, compiled for the host, speaking the protocol over stdin /
// stdout.
//
//   g++ -std=gnu++14 -O2 -fno-rtti -fno-exceptions -I../ODLEngine/src
//   -I../lab1_motion
//       main.cpp ../ODLEngine/src/*.cpp -o virtual_board
//   ./virtual_board --replay windows.txt [--storage slots.bin] [--seed 1]
//
// The "sensor" replays real recorded windows (a replay file written by
// odlkit.board.virtual.write_replay): RECORD <class> gets the next recorded
// window of that class, PREDICT [class] the next held-out window (of that
// class). stdout carries protocol bytes only; diagnostics go to stderr.
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "sketch_config.h"
#if defined(ODL_SKETCH_AUDIO) && ODL_SKETCH_AUDIO
// Lab 2: no backbone; windows are utterances of LPC cepstra
// (odl_audio_engine.h)
#include "odl_audio_engine.h"
#define ODL_INPUT_LEN ODL_MAX_FRAMES
#define ODL_INPUT_CHANNELS ODL_NUM_CEPS
#else
#include "odl_model_data.h"
// The int8 path (TRAIN q=int8): off unless the build defines ODL_INT8=1 (Board.virtual(int8=True)) for
// a sketch that ships odl_int8_model_data.h (odlkit.sketches: int8=True).
#if defined(ODL_INT8) && ODL_INT8
#include "odl_int8_model_data.h"
#else
#undef ODL_INT8
#define ODL_INT8 0
#endif
#endif
#include "odl_protocol.h"

namespace {

uint32_t host_micros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 1000000u + ts.tv_nsec / 1000);
}

// ------------------------------------------------------------------ replay
// sensor File format (text): a header line "ODLREPLAY 1 <len> <channels>
// <rate_hz> <n_windows>", then one line per window: "<pool> <class>
// <len*channels floats, time-major>", pool r (RECORD: what the user records) or
// p (PREDICT: held-out recordings). Version 2 (variable-length windows: Lab 2's
// utterances): "ODLREPLAY 2 <max_len> <channels> <rate_hz> <n_windows>", lines
// "<pool> <class> <frames> <frames*channels floats>", 1 <= frames
// <= max_len; the rest of the window is zero and window_frames() says how many
// rows hold data.
struct Window {
  char pool;
  std::string label;
  std::vector<float> x;
  unsigned frames;
};

class ReplaySensor : public odl::Sensor {
 public:
  bool load(const char* path, size_t len, size_t ch, std::string* err) {
    FILE* f = fopen(path, "r");
    if (!f) {
      *err = std::string("cannot open replay file ") + path + ": " + strerror(errno);
      return false;
    }
    char magic[16] = {0};
    unsigned ver = 0, flen = 0, fch = 0, rate = 0, n = 0;
    if (fscanf(f, "%15s %u %u %u %u %u", magic, &ver, &flen, &fch, &rate, &n) != 6 || strcmp(magic, "ODLREPLAY") != 0 ||
        (ver != 1 && ver != 2)) {
      fclose(f);
      *err = "replay file has no 'ODLREPLAY 1|2 ...' header";
      return false;
    }
    if (flen != len || fch != ch) {
      fclose(f);
      *err = "replay windows are " + std::to_string(flen) + "x" + std::to_string(fch) + ", the model needs " +
             std::to_string(len) + "x" + std::to_string(ch);
      return false;
    }
    rate_ = static_cast<uint16_t>(rate);
    ch_ = static_cast<uint16_t>(ch);
    for (unsigned i = 0; i < n; ++i) {
      Window w;
      char pool[4] = {0}, label[64] = {0};
      if (fscanf(f, "%3s %63s", pool, label) != 2 || (pool[0] != 'r' && pool[0] != 'p')) {
        fclose(f);
        *err = "replay file: bad window header at window " + std::to_string(i);
        return false;
      }
      w.pool = pool[0];
      w.label = label;
      w.frames = static_cast<unsigned>(len);
      if (ver == 2 && (fscanf(f, "%u", &w.frames) != 1 || w.frames < 1 || w.frames > len)) {
        fclose(f);
        *err = "replay file: window " + std::to_string(i) + " has no frame count in 1.." + std::to_string(len);
        return false;
      }
      w.x.assign(len * ch, 0.0f);
      for (size_t k = 0; k < w.frames * ch; ++k) {
        if (fscanf(f, "%f", &w.x[k]) != 1) {
          fclose(f);
          *err = "replay file: window " + std::to_string(i) + " is short";
          return false;
        }
      }
      windows_.push_back(w);
    }
    fclose(f);
    return true;
  }

  const char* board_name() const override { return "virtual"; }
  uint16_t window_frames() const override { return last_frames_; }
  uint16_t channels() const override { return ch_; }
  uint16_t sample_rate_hz() const override { return rate_; }

  const char* read_window(const char* hint, bool for_predict, float* out, size_t n, const char** truth) override {
    if (windows_.empty())
      return "no replay data loaded (start the virtual board with --replay "
             "FILE)";
    char pool = for_predict ? 'p' : 'r';
    size_t& cursor = cursor_for(pool, hint ? hint : "");
    // next window of the pool (and class) after the cursor, wrapping around
    for (size_t step = 0; step < windows_.size(); ++step) {
      size_t i = (cursor + step) % windows_.size();
      const Window& w = windows_[i];
      if (w.pool != pool || (hint && w.label != hint)) continue;
      if (w.x.size() != n) return "replay window size differs from the model input";
      memcpy(out, w.x.data(), n * sizeof(float));
      *truth = w.label.c_str();
      last_frames_ = static_cast<uint16_t>(w.frames);
      cursor = i + 1;
      return nullptr;
    }
    msg_ = std::string("no recorded ") + (for_predict ? "held-out " : "") + "windows of class '" + (hint ? hint : "") +
           "' in the replay; it has: " + labels();
    return msg_.c_str();
  }

  bool read_sample(float* out) override {
    if (windows_.empty()) return false;
    const Window& w = windows_[stream_win_ % windows_.size()];
    memcpy(out, &w.x[stream_t_ * ch_], ch_ * sizeof(float));
    if (++stream_t_ >= w.frames) {
      stream_t_ = 0;
      ++stream_win_;
    }
    return true;  // virtual time: no waiting between samples
  }

 private:
  size_t& cursor_for(char pool, const std::string& label) {
    std::string key = std::string(1, pool) + label;
    for (auto& c : cursors_) {
      if (c.first == key) return c.second;
    }
    cursors_.push_back(std::make_pair(key, size_t(0)));
    return cursors_.back().second;
  }
  std::string labels() const {
    std::string s;
    for (const Window& w : windows_) {
      if (s.find(" " + w.label + ",") == std::string::npos && s.find(w.label + ",") != 0) s += w.label + ", ";
    }
    return s.empty() ? "nothing" : s.substr(0, s.size() - 2);
  }
  std::vector<Window> windows_;
  std::vector<std::pair<std::string, size_t>> cursors_;
  std::string msg_;
  uint16_t rate_ = 25, ch_ = 6, last_frames_ = 0;
  size_t stream_win_ = 0, stream_t_ = 0;
};

// ---------------------------------------------------------------- file storage
// Two NOR-flash-like slots kept in a file, so SAVE survives a restart ("power
// cycle").
template <uint32_t SlotBytes>
class FileStorage : public odl::Storage {
 public:
  explicit FileStorage(const char* path) : path_(path ? path : "") {
    memset(mem_, 0xFF, sizeof(mem_));
    if (!path_.empty()) {
      FILE* f = fopen(path_.c_str(), "rb");
      if (f) {
        size_t got = fread(mem_, 1, sizeof(mem_), f);
        (void)got;
        fclose(f);
      }
    }
  }
  uint32_t slot_bytes() const override { return SlotBytes; }
  bool erase_slot(uint8_t slot) override {
    if (slot > 1) return false;
    memset(mem_[slot], 0xFF, SlotBytes);
    return persist();
  }
  bool write(uint8_t slot, uint32_t offset, const uint8_t* data, uint32_t len) override {
    if (slot > 1 || offset + len > SlotBytes || ((offset | len) & 3u)) return false;
    for (uint32_t i = 0; i < len; ++i) mem_[slot][offset + i] &= data[i];
    return persist();
  }
  bool read(uint8_t slot, uint32_t offset, uint8_t* data, uint32_t len) override {
    if (slot > 1 || offset + len > SlotBytes) return false;
    memcpy(data, mem_[slot] + offset, len);
    return true;
  }

 private:
  bool persist() {
    if (path_.empty()) return true;
    FILE* f = fopen(path_.c_str(), "wb");
    if (!f) return false;
    bool ok = fwrite(mem_, 1, sizeof(mem_), f) == sizeof(mem_);
    return fclose(f) == 0 && ok;
  }
  std::string path_;
  uint8_t mem_[2][SlotBytes];
};

// --------------------------------------------------------------------- stdio
class StdIo : public odl::Io {
 public:
  // Next byte if one is available now (never blocks), -1 otherwise.
  int read() override {
    if (pos_ < len_) return buf_[pos_++];
    if (eof_) return -1;
    pollfd p = {0, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return -1;
    fill();
    return pos_ < len_ ? buf_[pos_++] : -1;
  }
  // Blocks until input is available; false at end of input.
  bool wait() {
    if (pos_ < len_) return true;
    if (eof_) return false;
    fill();
    return pos_ < len_;
  }
  void write(const char* data, size_t n) override {
    while (n > 0) {
      ssize_t w = ::write(1, data, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        exit(0);  // host went away
      }
      data += w;
      n -= static_cast<size_t>(w);
    }
  }

 private:
  void fill() {
    ssize_t r;
    do {
      r = ::read(0, buf_, sizeof(buf_));
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
      eof_ = true;
      len_ = pos_ = 0;
    } else {
      len_ = static_cast<size_t>(r);
      pos_ = 0;
    }
  }
  uint8_t buf_[4096];
  size_t len_ = 0, pos_ = 0;
  bool eof_ = false;
};

#if defined(ODL_SKETCH_AUDIO) && ODL_SKETCH_AUDIO
const char* const kClassNames[] = ODL_CLASS_NAMES;
typedef odl::AudioEngine<ODL_MAX_FRAMES, ODL_HIDDEN, ODL_MAX_CLASSES, ODL_REPLAY_CAPACITY> EngineT;
#else
// Backbone training plans (TRAIN plan=bias|sparse): off unless the build defines the plan buffer
// and window store sizes (Board.virtual(plans=True) passes them).
#ifndef ODL_PLAN_BYTES
#define ODL_PLAN_BYTES 0
#endif
#ifndef ODL_WINDOW_CAPACITY
#define ODL_WINDOW_CAPACITY 0
#endif
typedef odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, ODL_REPLAY_CAPACITY, ODL_PLAN_BYTES,
                    ODL_WINDOW_CAPACITY, ODL_INPUT_LEN * ODL_INPUT_CHANNELS, ODL_INT8 != 0>
    EngineT;
#endif
EngineT engine;  // static storage, as on the board

}  // namespace

int main(int argc, char** argv) {
  const char* replay = nullptr;
  const char* storage_path = nullptr;
  uint32_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--replay") && i + 1 < argc)
      replay = argv[++i];
    else if (!strcmp(argv[i], "--storage") && i + 1 < argc)
      storage_path = argv[++i];
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      seed = static_cast<uint32_t>(strtoul(argv[++i], nullptr, 10));
    else {
      fprintf(stderr, "usage: %s [--replay FILE] [--storage FILE] [--seed N]\n", argv[0]);
      return 2;
    }
  }
  static ReplaySensor sensor;
  if (replay) {
    std::string err;
    if (!sensor.load(replay, ODL_INPUT_LEN, ODL_INPUT_CHANNELS, &err)) {
      fprintf(stderr, "virtual_board: %s\n", err.c_str());
      return 3;
    }
  }
  static FileStorage<ODL_STORAGE_SLOT_BYTES> storage(storage_path);
#if defined(ODL_SKETCH_AUDIO) && ODL_SKETCH_AUDIO
  odl::Status s = engine.begin(kClassNames, sizeof(kClassNames) / sizeof(kClassNames[0]), &storage, seed);
  EngineT& adapter = engine;  // the audio engine is its own EngineIface
#else
  odl::Status s = engine.begin(kOdlModel, seed);
#if ODL_INT8
  if (s == odl::kOk) s = engine.begin_int8(kOdlQModel);
#endif
  static odl::EngineAdapter<EngineT, ODL_INPUT_LEN * ODL_INPUT_CHANNELS> adapter(engine, &storage);
#endif
  if (s != odl::kOk) fprintf(stderr, "virtual_board: engine.begin failed: %s\n", odl::status_str(s));
  engine.set_clock(host_micros);
  static StdIo io;
  odl::BoardHooks hooks;
  hooks.micros = host_micros;
  static odl::Protocol proto(adapter, sensor, io, ODL_FIRMWARE_VERSION, hooks);
  proto.boot();
  while (io.wait()) proto.poll();
  return 0;
}
