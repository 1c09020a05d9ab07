// Host command-line driver of the ODLEngine library for the Python parity tests.
// Compiled by tests/test_engine.py with -I<dir of a generated odl_model_data.h>.
//
//   engine_cli features WINDOWS.f32 N OUT.f32
//       N raw windows (ODL_INPUT_LEN x ODL_INPUT_CHANNELS float32) -> N x ODL_FEATURE_DIM features
//   engine_cli train FEATS.f32 LABELS.u16 N EPOCHS BATCH LR MOMENTUM WD MODE(full|bias) REPLAY(0|1)
//                    SHUFFLE(0|1) SEED OUT.blob [NEW_CLASS ...]
//       begin(model, SEED), add_class(NEW_CLASS...), add the N samples, train, write the blob;
//       prints "epoch E loss L acc A" per epoch
//   engine_cli roundtrip IN.blob OUT.blob       deserialize then serialize (prints the status)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ODLEngine.h>

#include "odl_model_data.h"

#ifndef CLI_REPLAY
#define CLI_REPLAY 1024
#endif

static odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, CLI_REPLAY> g_engine;
static uint8_t g_blob[odl::blob_size_for(ODL_MAX_CLASSES, ODL_FEATURE_DIM)];
static uint8_t g_io[odl::blob_size_for(ODL_MAX_CLASSES, ODL_FEATURE_DIM) + 64];

static long read_file(const char* path, void* buf, long cap) {
  FILE* f = fopen(path, "rb");
  if (!f) return -1;
  const long n = (long)fread(buf, 1, (size_t)cap, f);
  fclose(f);
  return n;
}
static bool write_file(const char* path, const void* buf, size_t n) {
  FILE* f = fopen(path, "wb");
  if (!f) return false;
  const bool ok = fwrite(buf, 1, n, f) == n;
  fclose(f);
  return ok;
}
static int fail(const char* what, int status) {
  fprintf(stderr, "engine_cli: %s: %s (%d)\n", what, odl::status_str(status), status);
  return 1;
}
static bool print_epoch(const odl::EpochResult& r, void*) {
  printf("epoch %u loss %.9g acc %.9g\n", (unsigned)r.epoch, (double)r.loss, (double)r.accuracy);
  return true;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: engine_cli features|train|roundtrip ...\n");
    return 2;
  }
  int st = g_engine.begin(kOdlModel, 1);
  if (st != odl::kOk) return fail("begin", st);
  const char* cmd = argv[1];
  if (!strcmp(cmd, "features") && argc == 5) {
    const long n = atol(argv[3]);
    const long per = (long)ODL_INPUT_LEN * ODL_INPUT_CHANNELS;
    FILE* in = fopen(argv[2], "rb");
    FILE* out = fopen(argv[4], "wb");
    if (!in || !out) return fail("open", odl::kErrBadArgument);
    static float window[ODL_INPUT_LEN * ODL_INPUT_CHANNELS];
    float feat[ODL_FEATURE_DIM];
    for (long i = 0; i < n; ++i) {
      if (fread(window, sizeof(float), (size_t)per, in) != (size_t)per)
        return fail("short input", odl::kErrBadArgument);
      st = g_engine.extract_features(window, feat);
      if (st != odl::kOk) return fail("extract_features", st);
      fwrite(feat, sizeof(float), ODL_FEATURE_DIM, out);
    }
    fclose(in);
    fclose(out);
    return 0;
  }
  if (!strcmp(cmd, "train") && argc >= 15) {
    const long n = atol(argv[4]);
    if (n <= 0 || n > CLI_REPLAY) return fail("N", odl::kErrBadArgument);
    static float feats[CLI_REPLAY * ODL_FEATURE_DIM];
    static uint16_t labels[CLI_REPLAY];
    if (read_file(argv[2], feats, (long)sizeof(float) * ODL_FEATURE_DIM * n) !=
        (long)sizeof(float) * ODL_FEATURE_DIM * n)
      return fail("features file", odl::kErrBadArgument);
    if (read_file(argv[3], labels, 2 * n) != 2 * n) return fail("labels file", odl::kErrBadArgument);
    st = g_engine.begin(kOdlModel, (uint32_t)strtoul(argv[13], nullptr, 10));
    if (st != odl::kOk) return fail("begin", st);
    for (int a = 15; a < argc; ++a) {
      const int c = g_engine.add_class(argv[a]);
      if (c < 0) return fail("add_class", c);
    }
    for (long i = 0; i < n; ++i) {
      st = g_engine.add_sample(feats + i * ODL_FEATURE_DIM, labels[i]);
      if (st != odl::kOk) return fail("add_sample", st);
    }
    odl::TrainConfig cfg;
    cfg.epochs = (uint16_t)atoi(argv[5]);
    cfg.batch_size = (uint16_t)atoi(argv[6]);
    cfg.lr = strtof(argv[7], nullptr);
    cfg.momentum = strtof(argv[8], nullptr);
    cfg.weight_decay = strtof(argv[9], nullptr);
    cfg.mode = !strcmp(argv[10], "bias") ? odl::kTrainBiasOnly : odl::kTrainFull;
    cfg.use_replay = atoi(argv[11]) != 0;
    cfg.shuffle = atoi(argv[12]) != 0;
    st = g_engine.train(cfg, print_epoch, nullptr);
    if (st != odl::kOk) return fail("train", st);
    uint32_t len = 0;
    st = g_engine.serialize(g_blob, sizeof(g_blob), &len);
    if (st != odl::kOk) return fail("serialize", st);
    return write_file(argv[14], g_blob, len) ? 0 : fail("write", odl::kErrBadArgument);
  }
  if (!strcmp(cmd, "roundtrip") && argc == 4) {
    const long n = read_file(argv[2], g_io, (long)sizeof(g_io));
    if (n < 0) return fail("read", odl::kErrBadArgument);
    st = g_engine.deserialize(g_io, (uint32_t)n);
    printf("status %d %s\n", st, odl::status_str(st));
    if (st != odl::kOk) return 3;
    uint32_t len = 0;
    st = g_engine.serialize(g_blob, sizeof(g_blob), &len);
    if (st != odl::kOk) return fail("serialize", st);
    return write_file(argv[3], g_blob, len) ? 0 : fail("write", odl::kErrBadArgument);
  }
  fprintf(stderr, "engine_cli: unknown command or wrong arguments: %s\n", cmd);
  return 2;
}
