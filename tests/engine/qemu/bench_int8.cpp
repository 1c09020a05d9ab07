// Int8 benchmark for benchmarks/device_int8.py, run under qemu with -icount
// shift=0 (and on the host, where the ticks read 0, to check the outputs are
// the same bits). Needs odl_int8_model_data.h (the int8 backbone) and
// int8_scenario.h (int8 windows, labels, a head). Measures: the int8 backbone
// forward of one window; one epoch of int8 head training (QAS and naive) and of
// the float head (odl_head.h) on the same features, as 2-epoch minus 1-epoch
// runs.
#include <stdio.h>
#include <string.h>

#include "int8_scenario.h"
#include "odl_head.h"
#include "odl_int8.h"
#include "odl_int8_model_data.h"
#include "qemu/harness.h"

static const uint16_t kFd = 64, kC = 8;
static int8_t g_arena[4096];
static int8_t g_q[kScenarioCount * kFd];
static float g_f[kScenarioCount * kFd];
static uint16_t g_labels[kScenarioCount], g_sessions[kScenarioCount], g_order[kScenarioCount];
static int8_t g_Wq[kC * kFd];
static int32_t g_bq[kC];
static float g_latW[kC * kFd], g_latb[kC], g_vW[kC * kFd], g_vb[kC], g_gW[kC * kFd], g_gb[kC], g_probs[kC], g_xr[kFd];
static float g_W[kC * kFd], g_b[kC];
static char g_names[kC][odl::kClassNameBytes];

static odl::StoreView store() {
  odl::StoreView s = odl::StoreView();
  s.feature_dim = kFd;
  s.capacity = kScenarioCount;
  s.features = g_f;
  s.labels = g_labels;
  s.sessions = g_sessions;
  s.order = g_order;
  odl::store_clear(s, 1);
  s.count = kScenarioCount;
  return s;
}

static uint32_t qtrain(int epochs, bool qas) {
  odl::QHeadView h = {kFd,
                      kC,
                      0,
                      g_Wq,
                      g_bq,
                      g_latW,
                      g_latb,
                      g_vW,
                      g_vb,
                      g_gW,
                      g_gb,
                      g_probs,
                      g_xr,
                      0.0f,
                      kOdlQModel.feature_scale,
                      kOdlQModel.feature_zero};
  odl::qhead_quantize(h, kScenarioHeadW, kScenarioHeadB, kScenarioClasses);
  odl::StoreView s = store();
  odl::TrainConfig cfg;
  cfg.epochs = (uint16_t)epochs;
  cfg.batch_size = 8;
  cfg.lr = 2e-4f;
  uint32_t steps = 0;
  counter_start();
  const odl::Status st = odl::qhead_train(h, s, g_q, cfg, qas, nullptr, nullptr, &steps);
  const uint32_t t = counter_ticks();
  if (st != odl::kOk) printf("ERROR qhead_train %s\n", odl::status_str(st));
  return t;
}

static uint32_t ftrain(int epochs) {
  odl::HeadView h = {kFd, kC, kScenarioClasses, g_W, g_b, g_vW, g_vb, g_gW, g_gb, g_probs, g_names};
  memcpy(g_W, kScenarioHeadW, sizeof(float) * kScenarioClasses * kFd);
  memcpy(g_b, kScenarioHeadB, sizeof(float) * kScenarioClasses);
  odl::StoreView s = store();
  odl::TrainConfig cfg;
  cfg.epochs = (uint16_t)epochs;
  cfg.batch_size = 8;
  cfg.lr = 2e-4f;
  counter_start();
  const odl::Status st = odl::head_train(h, s, cfg, nullptr, nullptr);
  const uint32_t t = counter_ticks();
  if (st != odl::kOk) printf("ERROR head_train %s\n", odl::status_str(st));
  return t;
}

int main() {
#if defined(__arm__)
  print_calibration();
#endif
  if (odl::qvalidate_model(kOdlQModel, sizeof(g_arena)) != odl::kOk) printf("ERROR model\n");
  uint32_t fwd = 0, sum = 0;
  for (uint32_t i = 0; i < kScenarioCount; ++i) {
    counter_start();
    odl::qrun_backbone(kOdlQModel, kScenarioWindows[i], g_arena, sizeof(g_arena), g_q + i * kFd);
    fwd += counter_ticks();
    g_labels[i] = kScenarioLabels[i];
    for (uint16_t f = 0; f < kFd; ++f) {
      g_f[i * kFd + f] = kOdlQModel.feature_scale * (float)((int32_t)g_q[i * kFd + f] - kOdlQModel.feature_zero);
      sum = sum * 31u + (uint8_t)g_q[i * kFd + f];
    }
  }
  printf("forward_ticks_per_window %lu features_hash %lu\n", (unsigned long)(fwd / kScenarioCount), (unsigned long)sum);
  for (int qas = 1; qas >= 0; --qas) {
    const uint32_t t1 = qtrain(1, qas != 0), t2 = qtrain(2, qas != 0);
    uint32_t h = 0;
    for (uint32_t i = 0; i < kScenarioClasses * kFd; ++i) h = h * 31u + (uint8_t)g_Wq[i];
    printf("int8 qas %d epoch1_ticks %lu epoch2_ticks %lu weights_hash %lu\n", qas, (unsigned long)t1,
           (unsigned long)t2, (unsigned long)h);
  }
  const uint32_t f1 = ftrain(1), f2 = ftrain(2);
  printf("float epoch1_ticks %lu epoch2_ticks %lu\n", (unsigned long)f1, (unsigned long)f2);
  printf("qhead_bytes %lu fhead_bytes %lu\n",
         (unsigned long)(sizeof(g_Wq) + sizeof(g_bq) + sizeof(g_latW) + sizeof(g_latb) + sizeof(g_vW) + sizeof(g_vb) +
                         sizeof(g_gW) + sizeof(g_gb) + sizeof(g_probs) + sizeof(g_xr)),
         (unsigned long)(sizeof(g_W) + sizeof(g_b) + sizeof(g_vW) + sizeof(g_vb) + sizeof(g_gW) + sizeof(g_gb) +
                         sizeof(g_probs)));
  printf("done\n");
  return 0;
}
