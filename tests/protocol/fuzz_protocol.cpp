// fuzz_protocol.cpp - libFuzzer harness for the board's protocol stack: LineAssembler,
// parse_frame and the Protocol dispatcher driving a real odl::Engine with the lab1_motion
// model. Built with -fsanitize=fuzzer,address,undefined by tests/test_protocol_fuzz.py.
//
// Checked on every input, besides ASan/UBSan: every byte the board writes belongs to a
// frame with a valid CRC (or to STREAM sample lines), no frame exceeds kMaxLine, and a
// final ERR reply never comes with a change of the head weights or of the stored samples.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "odl_blob.h"
#include "sketch_config.h"
#if defined(ODL_SKETCH_AUDIO) && ODL_SKETCH_AUDIO
// Lab 2 (lab2_microphone): the audio engine, its own EngineIface; utterances of 1..32 frames
#include "odl_audio_engine.h"
#define ODL_FUZZ_AUDIO 1
#else
#include "odl_model_data.h"
#define ODL_FUZZ_AUDIO 0
#endif
#include "odl_protocol.h"

namespace {

#if ODL_FUZZ_AUDIO
const char* const kClassNames[] = ODL_CLASS_NAMES;
typedef odl::AudioEngine<ODL_MAX_FRAMES, ODL_HIDDEN, ODL_MAX_CLASSES, 32> EngineT;
#else
typedef odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 32> EngineT;
#endif
EngineT engine;
odl::RamStorage<ODL_STORAGE_SLOT_BYTES> storage;

class FakeSensor : public odl::Sensor {
 public:
  const char* board_name() const override { return "fuzz"; }
  const char* read_window(const char* hint, bool, float* out, size_t n, const char** truth) override {
    uint32_t h = 2166136261u;
    for (const char* p = hint ? hint : ""; *p; ++p) h = (h ^ (uint8_t)*p) * 16777619u;
    for (size_t i = 0; i < n; ++i) out[i] = (float)((h >> (i % 24)) & 7) * 0.1f - 0.3f + (float)(i % 6);
    frames_ = (uint16_t)(1 + h % 32);
    *truth = nullptr;
    return nullptr;
  }
  uint16_t window_frames() const override { return frames_; }
  uint16_t frames_ = 0;
  bool read_sample(float* out) override {
    if (++samples_ > 500) return false;  // bounded STREAM output per input
    for (int k = 0; k < 6; ++k) out[k] = (float)k;
    return true;
  }
  uint32_t samples_ = 0;
};

class FuzzIo : public odl::Io {
 public:
  const uint8_t* in = nullptr;
  size_t n = 0, pos = 0;
  char line[odl::kMaxLine + 64];
  size_t len = 0;
  bool in_stream_line = false;
  int finals_err = 0;  // final ERR replies completed since last reset

  int read() override { return pos < n ? in[pos++] : -1; }
  void write(const char* d, size_t k) override {
    for (size_t i = 0; i < k; ++i) put(d[i]);
  }
  void put(char c) {
    if (len >= sizeof(line) - 1) abort();  // an output line longer than the maximum frame
    line[len++] = c;
    if (c != '\n') return;
    line[len] = 0;
    if (line[0] == '$') {
      if (len > odl::kMaxLine) abort();
      odl::Frame f;
      bool trusted = false;
      // board wrote a bad frame? (replies may carry more tokens than a request may: kPeBadArg)
      int err = odl::parse_frame(line, len - 1, &f, &trusted);
      if (err != 0 && err != odl::kPeBadArg) abort();
      if (!strcmp(f.word, "ERR")) ++finals_err;
    } else {
      // STREAM sample line: numbers and commas only
      for (size_t i = 0; i + 2 < len; ++i) {
        char c2 = line[i];
        if (!((c2 >= '0' && c2 <= '9') || c2 == ',' || c2 == '.' || c2 == '-' || c2 == 'e' || c2 == '+')) abort();
      }
    }
    len = 0;
  }
};

uint8_t blob_before[EngineT::kBlobCapacity];
uint8_t blob_after[EngineT::kBlobCapacity];

uint32_t snapshot(uint8_t* out, uint32_t* stored) {
  uint32_t size = 0;
#if ODL_FUZZ_AUDIO
  odl::Status s = odl::kOk;
  const uint8_t* b = engine.blob(&size, &s);
  if (s != odl::kOk) abort();
  memcpy(out, b, size);
#else
  if (engine.serialize(out, sizeof(blob_before), &size) != odl::kOk) abort();
#endif
  *stored = engine.num_samples();
  return size;
}

}  // namespace

// Structure-aware mode (first input byte odd): every line of the rest of the input is a frame
// body that gets a correct "$" prefix and " *crc" suffix, so the fuzzer reaches the command
// parsers and the engine instead of stopping at the CRC check.
uint8_t framed[16384];

size_t frame_lines(const uint8_t* data, size_t size) {
  size_t o = 0, start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i < size && data[i] != '\n') continue;
    size_t len = i - start;
    if (o + len + 12 > sizeof(framed)) break;
    framed[o++] = '$';
    memcpy(framed + o, data + start, len);
    o += len;
    uint32_t crc = odl::crc32(data + start, len);
    o += (size_t)snprintf((char*)framed + o, 12, " *%08x", (unsigned)crc);
    framed[o++] = '\n';
    start = i + 1;
  }
  return o;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && (data[0] & 1)) {
    size = frame_lines(data + 1, size - 1);
    data = framed;
  } else if (size > 0) {
    ++data;
    --size;
  }
  static bool begun = false;
  if (!begun) {
#if ODL_FUZZ_AUDIO
    if (engine.begin(kClassNames, ODL_NUM_CLASSES, &storage, 1) != odl::kOk) abort();
#else
    if (engine.begin(kOdlModel, 1) != odl::kOk) abort();
#endif
    begun = true;
  }
  engine.reset();
#if ODL_FUZZ_AUDIO
  EngineT& adapter = engine;
#else
  static odl::EngineAdapter<EngineT, ODL_INPUT_LEN * ODL_INPUT_CHANNELS> adapter(engine, &storage);
#endif
  FakeSensor sensor;
  static FuzzIo io;
  io.in = data;
  io.n = size;
  io.pos = 0;
  io.len = 0;
  static odl::Protocol* proto = nullptr;
  static char mem[sizeof(odl::Protocol)] __attribute__((aligned(16)));
  proto = new (mem) odl::Protocol(adapter, sensor, io, "fuzz");  // placement: no heap
  int c;
  while ((c = io.read()) >= 0) {
    uint32_t st0 = 0, st1 = 0;
    uint32_t n0 = 0, n1 = 0;
    bool boundary = (c == '\n' || c == '$');  // the only bytes that complete a line
    if (boundary) n0 = snapshot(blob_before, &st0);
    io.finals_err = 0;
    proto->feed((uint8_t)c);
    if (boundary && io.finals_err > 0) {
      // an error reply: nothing may have changed (a SETW chunk is staged, not applied)
      n1 = snapshot(blob_after, &st1);
      // (the fake sensor never fails, so no RECORD can stop halfway after storing windows)
      if (n0 != n1 || memcmp(blob_before, blob_after, n0) != 0 || st0 != st1) abort();
    }
  }
  proto->~Protocol();
  return 0;
}
