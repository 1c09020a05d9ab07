// Training-plan benchmark for benchmarks/device_plans.py, run under qemu with -icount shift=0.
// Needs odl_model_data.h (the backbone) and scenario_data.h (real windows) on the include path.
// For each plan (head, bias, sparse k=1..K): one epoch and two epochs of training from the same
// start; the difference is one epoch = STEPS mini-batches (the setup cost cancels).
#include <stdio.h>
#include <string.h>

#include <ODLEngine.h>

#include "odl_model_data.h"
#include "qemu/harness.h"
#include "scenario_data.h"

#ifndef PLAN_BYTES
#define PLAN_BYTES (160u * 1024u)
#endif
#ifndef BATCH
#define BATCH 8
#endif

typedef odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 64, PLAN_BYTES, 64,
                    ODL_INPUT_LEN * ODL_INPUT_CHANNELS>
    EngineT;
static EngineT g_engine;

static uint32_t train_ticks(int plan, int k, int epochs, uint32_t* plan_bytes) {
  g_engine.begin(kOdlModel, 1);
  for (uint32_t i = 0; i < kScenarioCount; ++i) g_engine.add_window(kScenarioWindows[i], kScenarioLabels[i]);
  odl::TrainConfig cfg;
  cfg.epochs = (uint16_t)epochs;
  cfg.batch_size = BATCH;
  cfg.lr = 1e-3f;
  cfg.plan = (uint8_t)plan;
  cfg.sparse_layers = (uint8_t)k;
  counter_start();
  const odl::Status s = g_engine.train(cfg);
  const uint32_t t = counter_ticks();
  if (s != odl::kOk) printf("ERROR plan %d k %d: %s\n", plan, k, odl::status_str(s));
  *plan_bytes = g_engine.stats().plan_bytes;
  return t;
}

int main() {
  print_calibration();
  printf("engine_bytes %lu samples %lu batch %d\n", (unsigned long)sizeof(g_engine), (unsigned long)kScenarioCount,
         BATCH);
  for (int plan = 0; plan <= 2; ++plan) {
    for (int k = plan == 2 ? 1 : 0; k <= (plan == 2 ? 5 : 0); ++k) {
      uint32_t need = 0;
      if (plan && g_engine.plan_memory((uint8_t)plan, (uint8_t)k, &need) != odl::kOk) break;
      if (need > PLAN_BYTES) break;
      uint32_t b1 = 0, b2 = 0;
      const uint32_t t1 = train_ticks(plan, k, 1, &b1);
      const uint32_t t2 = train_ticks(plan, k, 2, &b2);
      printf("plan %d k %d epoch1_ticks %lu epoch2_ticks %lu plan_bytes %lu\n", plan, k, (unsigned long)t1,
             (unsigned long)t2, (unsigned long)b2);
    }
  }
  printf("done\n");
  return 0;
}
