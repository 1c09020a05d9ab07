// Backbone forward benchmark (qemu -icount shift=0): instructions per window through the
// frozen backbone of a generated odl_model_data.h, on real windows (example_windows.h).
#include <stdio.h>

#include <ODLEngine.h>

#include "odl_model_data.h"
#include "example_windows.h"
#include "qemu/cycles.h"

static odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 16> g_engine;
static float g_feat[ODL_FEATURE_DIM];

int main() {
  if (g_engine.begin(kOdlModel) != odl::kOk) return 1;
#ifndef REPS
#define REPS 4
#endif
  const int R = REPS;
  counter_start();
  for (int r = 0; r < R; ++r) g_engine.extract_features(kExampleWindows[r % EXAMPLE_COUNT], g_feat);
  printf("backbone_ticks %lu reps %d macs %lu\n", (unsigned long)counter_ticks(), R, (unsigned long)ODL_BACKBONE_MACS);
  printf("engine_bytes %lu\n", (unsigned long)g_engine.stats().engine_bytes);
  printf("done\n");
  return 0;
}
