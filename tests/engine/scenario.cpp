// A training scenario compiled twice, for the host (g++) and for a Cortex-M4F under qemu
// (arm-none-eabi-g++), from the same library sources; tests/test_qemu.py compares the outputs.
// Needs odl_model_data.h (the backbone) and scenario_data.h (kScenarioWindows[N][LEN*CH] real
// windows, kScenarioLabels[N]) on the include path.
#include <stdio.h>
#include <string.h>

#include <ODLEngine.h>

#include "odl_model_data.h"
#include "scenario_data.h"
#include "qemu/cycles.h"

static odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 64> g_engine;
static odl::RamStorage<4096> g_flash;
static float g_feat[ODL_FEATURE_DIM];

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static bool on_epoch(const odl::EpochResult& r, void*) {
  printf("epoch %u loss %.6e acc %.4f\n", (unsigned)r.epoch, (double)r.loss, (double)r.accuracy);
  return true;
}
static int check(int st, const char* what) {
  if (st < 0) printf("ERROR %s: %s\n", what, odl::status_str(st));
  return st;
}

int main() {
  if (check(g_engine.begin(kOdlModel, 42), "begin") < 0) return 1;
  // the last class of the data is added at run time
  const uint16_t new_class = ODL_NUM_CLASSES;
  if (check(g_engine.add_class("newclass"), "add_class") != new_class) return 1;
  uint32_t fsum = 0;
  for (uint32_t i = 0; i < kScenarioCount; ++i) {
    if (check(g_engine.add_window(kScenarioWindows[i], kScenarioLabels[i], g_feat), "add_window") < 0) return 1;
    for (int f = 0; f < ODL_FEATURE_DIM; ++f) fsum = fsum * 31u + bits(g_feat[f]);
  }
  printf("features hash %08lx\n", (unsigned long)fsum);
  odl::TrainConfig cfg;
  cfg.epochs = 4;
  cfg.batch_size = 8;
  cfg.lr = 1e-4f;
  cfg.momentum = 0.9f;
  cfg.weight_decay = 1e-3f;
  if (check(g_engine.train(cfg, on_epoch, nullptr), "train") < 0) return 1;
  cfg.mode = odl::kTrainBiasOnly;
  cfg.epochs = 2;
  cfg.lr = 1e-2f;
  if (check(g_engine.train(cfg, on_epoch, nullptr), "train bias") < 0) return 1;
  odl::EvalResult ev;
  if (check(g_engine.evaluate(&ev), "evaluate") < 0) return 1;
  printf("accuracy %u/%u\n", (unsigned)ev.correct, (unsigned)ev.n);
  for (uint16_t t = 0; t < ev.num_classes; ++t) {
    printf("confusion");
    for (uint16_t p = 0; p < ev.num_classes; ++p) printf(" %u", (unsigned)ev.confusion[t * ev.stride + p]);
    printf("\n");
  }
  odl::Prediction pred;
  check(g_engine.predict(kScenarioWindows[0], &pred), "predict");
  printf("predict %d %08lx\n", (int)pred.label, (unsigned long)bits(pred.confidence));
  for (uint16_t c = 0; c < g_engine.num_classes(); ++c) {
    printf("W %u", (unsigned)c);
    for (int f = 0; f < ODL_FEATURE_DIM; ++f)
      printf(" %08lx", (unsigned long)bits(g_engine.weights()[c * ODL_FEATURE_DIM + f]));
    printf("\nb %u %08lx\n", (unsigned)c, (unsigned long)bits(g_engine.bias()[c]));
  }
  // storage: save, clobber, load back
  static uint8_t blob[odl::blob_size_for(ODL_MAX_CLASSES, ODL_FEATURE_DIM)];
  uint32_t n = 0;
  g_engine.serialize(blob, sizeof(blob), &n);
  printf("blob %lu crc %08lx\n", (unsigned long)n, (unsigned long)odl::crc32(blob, n));
  if (check(g_engine.save(g_flash), "save") < 0) return 1;
  g_engine.reset();
  if (check(g_engine.load(g_flash), "load") < 0) return 1;
  uint32_t n2 = 0;
  static uint8_t blob2[sizeof(blob)];
  g_engine.serialize(blob2, sizeof(blob2), &n2);
  printf("reloaded %s\n", n2 == n && memcmp(blob, blob2, n) == 0 ? "identical" : "DIFFERENT");
  printf("engine RAM %lu bytes\n", (unsigned long)g_engine.stats().engine_bytes);
  printf("done\n");
  return 0;
}
