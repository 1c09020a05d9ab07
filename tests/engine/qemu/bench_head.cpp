// Head benchmark for benchmarks/device_head.py, run under qemu with -icount shift=0.
// Build with -DFD=<features> -DNC=<classes> -DBATCH=<N> -DSTEPS=<K> -DTRAIN=<0|1>.
// TRAIN=0 links only inference buffers, so the size difference of the two ELFs is the
// SRAM/flash that training adds.
#include <stdio.h>
#include <string.h>

#include <ODLEngine.h>
#include "odl_rng.h"
#include "qemu/harness.h"

#define NSAMPLES (BATCH * STEPS)
// benchmarks/device_head.py's cycle estimate traces builds that differ in one count only
#ifndef INFER_REPS
#define INFER_REPS 20
#endif
#ifndef TRAIN_EPOCHS
#define TRAIN_EPOCHS 1
#endif
#ifndef CALIBRATE
#define CALIBRATE 1
#endif

static float W[NC * FD], b[NC], probs[NC];
static char names[NC][odl::kClassNameBytes];
static float x[FD];
#if TRAIN
static float vW[NC * FD], vb[NC], gW[NC * FD], gb[NC];
static float feats[NSAMPLES * FD];
static uint16_t labels[NSAMPLES], sessions[NSAMPLES], order[NSAMPLES];
#endif

int main() {
  uint32_t rng = 12345;
#if TRAIN
  odl::HeadView h = {FD, NC, 0, W, b, vW, vb, gW, gb, probs, names};
  odl::StoreView s = {FD, NSAMPLES, 0, 0, 0, 0, 0, feats, labels, sessions, order};
  odl::store_clear(s, 1);
#else
  odl::HeadView h = {FD, NC, 0, W, b, nullptr, nullptr, nullptr, nullptr, probs, names};
#endif
  for (int c = 0; c < NC; ++c) {
    char name[16];
    snprintf(name, sizeof(name), "c%d", c);
    h.num_classes = (uint16_t)c;
    memset(names[c], 0, sizeof(names[c]));
    memcpy(names[c], name, strlen(name));
  }
  h.num_classes = NC;
  for (int i = 0; i < NC * FD; ++i) W[i] = (float)((int)(odl::xorshift32(&rng) % 2001) - 1000) / 10000.0f;
  for (int f = 0; f < FD; ++f) x[f] = (float)(odl::xorshift32(&rng) % 1000) / 100.0f;
  printf("calibration_ticks %lu\n", CALIBRATE ? (unsigned long)calibration_ticks() : 0ul);

  const int R = INFER_REPS;
  odl::Prediction p;
  counter_start();
  for (int r = 0; r < R; ++r) odl::head_predict(h, x, &p);
  printf("inference_ticks %lu reps %d label %d\n", (unsigned long)counter_ticks(), R, (int)p.label);
#if TRAIN
  for (int i = 0; i < NSAMPLES; ++i) {
    for (int f = 0; f < FD; ++f) x[f] = (float)(odl::xorshift32(&rng) % 1000) / 100.0f;
    odl::store_add(s, h, x, (uint16_t)(i % NC));
  }
  odl::TrainConfig cfg;
  cfg.epochs = TRAIN_EPOCHS;
  cfg.batch_size = BATCH;
  cfg.lr = 1e-3f;
  cfg.momentum = 0.9f;
  cfg.weight_decay = 1e-4f;
  cfg.shuffle = true;
  counter_start();
  const int st = odl::head_train(h, s, cfg, nullptr, nullptr);
  printf("train_ticks %lu steps %d status %d\n", (unsigned long)counter_ticks(), STEPS, st);
  cfg.mode = odl::kTrainBiasOnly;
  cfg.epochs = 1;
  counter_start();
  odl::head_train(h, s, cfg, nullptr, nullptr);
  printf("train_bias_ticks %lu steps %d\n", (unsigned long)counter_ticks(), STEPS);
#endif
  printf("done\n");
  return 0;
}
