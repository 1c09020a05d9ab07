// Host (and qemu) driver of the ODLEngine training plans for
// tests/test_training_plans.py. Compiled with -I<dir of a generated
// odl_model_data.h>; with -DPLAN_SCENARIO it reads its data from
// plan_scenario.h (compiled in, for qemu) instead of files.
//
//   plan_cli memory
//       prints "plan head|bias|sparse K bytes N" for every plan of the model
//   plan_cli train WINDOWS.f32 LABELS.u16 N PLAN K EPOCHS BATCH LR MOMENTUM WD
//   MODE SEED OUT.f32
//       begin(model, SEED), RECORD-like add_window of the N raw windows, train
//       with the plan, then write the head (W [class][feature], b) and every
//       backbone tensor (layer order, W then b) as float32 to OUT.f32. Prints
//       "epoch E loss L acc A" per epoch and "plan_bytes N steps S".
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ODLEngine.h>

#include "odl_model_data.h"

#ifndef CLI_REPLAY
#define CLI_REPLAY 128
#endif
#ifndef CLI_PLAN_BYTES
#define CLI_PLAN_BYTES (160u * 1024u)
#endif

typedef odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, CLI_REPLAY, CLI_PLAN_BYTES, CLI_REPLAY,
                    ODL_INPUT_LEN * ODL_INPUT_CHANNELS>
    EngineT;
static EngineT g_engine;

static bool print_epoch(const odl::EpochResult& r, void*) {
  printf("epoch %u loss %.9g acc %.9g\n", (unsigned)r.epoch, (double)r.loss, (double)r.accuracy);
  return true;
}
static int fail(const char* what, int status) {
  printf("ERROR %s: %s (%d)\n", what, odl::status_str(status), status);
  return 1;
}

static uint32_t kernel_floats(const odl::LayerSpec& L) {
  switch (L.type) {
    case odl::kConv1D: return (uint32_t)L.kernel * L.in_channels * L.out_channels;
    case odl::kDepthwiseConv1D: return (uint32_t)L.kernel * L.in_channels;
    case odl::kDense: return (uint32_t)L.in_channels * L.out_channels;
    default: return 0;
  }
}

// Every trained value, in a fixed order: head W, head b, then each layer's W
// and b.
template <class Out>
static void emit_params(Out out) {
  out(g_engine.weights(), (uint32_t)g_engine.num_classes() * ODL_FEATURE_DIM);
  out(g_engine.bias(), g_engine.num_classes());
  const odl::ModelSpec& m = g_engine.running_model();
  for (uint16_t l = 0; l < m.num_layers; ++l) {
    const odl::LayerSpec& L = m.layers[l];
    if (L.weights) out(L.weights, kernel_floats(L));
    if (L.bias) out(L.bias, L.out_channels);
  }
}

static int run_train(const float* windows, const uint16_t* labels, long n, int plan, int k, int epochs, int batch,
                     float lr, float mom, float wd, int mode, uint32_t seed, FILE* out) {
  int st = g_engine.begin(kOdlModel, seed);
  if (st != odl::kOk) return fail("begin", st);
  for (long i = 0; i < n; ++i) {
    st = g_engine.add_window(windows + i * ODL_INPUT_LEN * ODL_INPUT_CHANNELS, labels[i]);
    if (st != odl::kOk) return fail("add_window", st);
  }
  odl::TrainConfig cfg;
  cfg.epochs = (uint16_t)epochs;
  cfg.batch_size = (uint16_t)batch;
  cfg.lr = lr;
  cfg.momentum = mom;
  cfg.weight_decay = wd;
  cfg.mode = mode ? odl::kTrainBiasOnly : odl::kTrainFull;
  cfg.plan = (uint8_t)plan;
  cfg.sparse_layers = (uint8_t)k;
  st = g_engine.train(cfg, print_epoch, nullptr);
  if (st != odl::kOk) return fail("train", st);
  const odl::Stats s = g_engine.stats();
  printf("plan_bytes %u steps %u\n", (unsigned)s.plan_bytes, (unsigned)s.last_steps);
  if (out) {
    emit_params([out](const float* v, uint32_t c) { fwrite(v, sizeof(float), c, out); });
  } else {  // qemu: the values as hex words (bit-exact text)
    emit_params([](const float* v, uint32_t c) {
      for (uint32_t i = 0; i < c; ++i) {
        uint32_t u;
        memcpy(&u, v + i, 4);
        printf("%08lx%c", (unsigned long)u, (i + 1) % 16 == 0 || i + 1 == c ? '\n' : ' ');
      }
    });
  }
  return 0;
}

static int print_memory() {
  int st = g_engine.begin(kOdlModel, 1);
  if (st != odl::kOk) return fail("begin", st);
  uint32_t b = 0;
  g_engine.plan_memory(odl::kPlanBias, 0, &b);
  printf("plan bias 0 bytes %u\n", (unsigned)b);
  for (int k = 1; k <= 8; ++k) {
    if (g_engine.plan_memory(odl::kPlanSparse, (uint8_t)k, &b) != odl::kOk) break;
    printf("plan sparse %d bytes %u\n", k, (unsigned)b);
  }
  return 0;
}

#ifdef PLAN_SCENARIO
#include "plan_scenario.h"
int main() {
  int rc = 0;
  for (unsigned r = 0; r < sizeof(kRuns) / sizeof(kRuns[0]) && rc == 0; ++r) {
    const PlanRun& p = kRuns[r];
    printf("run %u\n", r);
    rc = run_train(&kScenarioWindows[0][0], kScenarioLabels, kScenarioCount, p.plan, p.k, p.epochs, p.batch, p.lr,
                   p.mom, p.wd, 0, p.seed, nullptr);
  }
  if (rc == 0) rc = print_memory();
  printf(rc == 0 ? "done\n" : "ERROR\n");
  return rc;
}
#else
static long read_file(const char* path, void* buf, long cap) {
  FILE* f = fopen(path, "rb");
  if (!f) return -1;
  const long n = (long)fread(buf, 1, (size_t)cap, f);
  fclose(f);
  return n;
}

int main(int argc, char** argv) {
  if (argc >= 2 && !strcmp(argv[1], "memory")) return print_memory();
  if (argc == 15 && !strcmp(argv[1], "train")) {
    const long n = atol(argv[4]);
    if (n <= 0 || n > CLI_REPLAY) return fail("N", odl::kErrBadArgument);
    static float windows[CLI_REPLAY * ODL_INPUT_LEN * ODL_INPUT_CHANNELS];
    static uint16_t labels[CLI_REPLAY];
    const long wbytes = (long)sizeof(float) * ODL_INPUT_LEN * ODL_INPUT_CHANNELS * n;
    if (read_file(argv[2], windows, wbytes) != wbytes) return fail("windows file", odl::kErrBadArgument);
    if (read_file(argv[3], labels, 2 * n) != 2 * n) return fail("labels file", odl::kErrBadArgument);
    const char* plan = argv[5];
    const int p = !strcmp(plan, "head") ? 0 : !strcmp(plan, "bias") ? 1 : !strcmp(plan, "sparse") ? 2 : 9;
    FILE* out = fopen(argv[14], "wb");
    if (!out) return fail("open", odl::kErrBadArgument);
    const int rc = run_train(windows, labels, n, p, atoi(argv[6]), atoi(argv[7]), atoi(argv[8]),
                             strtof(argv[9], nullptr), strtof(argv[10], nullptr), strtof(argv[11], nullptr),
                             !strcmp(argv[12], "bias"), (uint32_t)strtoul(argv[13], nullptr, 10), out);
    fclose(out);
    return rc;
  }
  fprintf(stderr,
          "usage: plan_cli memory | train WINDOWS LABELS N PLAN K "
          "EPOCHS BATCH LR MOM WD MODE SEED OUT\n");
  return 2;
}
#endif
