// The TrainHead example's setup() on the host: the same headers, the same calls, the training
// configuration passed on the command line (tests/test_engine.py reads it from TrainHead.ino).
//   trainhead_host EPOCHS BATCH LR MOMENTUM
#include <stdio.h>
#include <stdlib.h>

#include <ODLEngine.h>

#include "example_windows.h"
#include "odl_model_data.h"

static odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 64> engine;

static bool on_epoch(const odl::EpochResult& r, void*) {
  printf("epoch %u loss %.6f accuracy %.4f\n", (unsigned)r.epoch, (double)r.loss, (double)r.accuracy);
  return true;
}

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  if (engine.begin(kOdlModel) != odl::kOk) return 3;
  if (engine.add_class(kExampleNewClass) < 0) return 4;
  for (int i = 0; i < EXAMPLE_COUNT; ++i)
    if (engine.add_window(kExampleWindows[i], kExampleLabels[i]) != odl::kOk) return 5;
  odl::TrainConfig cfg;
  cfg.epochs = (uint16_t)atoi(argv[1]);
  cfg.batch_size = (uint16_t)atoi(argv[2]);
  cfg.lr = (float)atof(argv[3]);
  cfg.momentum = (float)atof(argv[4]);
  const int st = engine.train(cfg, on_epoch, nullptr);
  printf("train: %s\n", odl::status_str(st));
  odl::EvalResult ev;
  engine.evaluate(&ev);
  printf("accuracy %.4f\n", (double)ev.accuracy);
  return st == odl::kOk ? 0 : 1;
}
