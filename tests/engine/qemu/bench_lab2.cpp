// Lab 2 cost under qemu (benchmarks/device_lab2.py): training steps of the two-layer network and
// LPC frames of the audio front end, in builds that differ only in how often the measured phase
// runs (EPOCHS, LPC_CHUNKS), so the difference of two runs is the phase alone.
//   -DEPOCHS=n -DLAYERS=1|2 (odl::kLayersHead|kLayersAll) -DLPC_CHUNKS=n
#include <stdio.h>
#include <string.h>

#include <ODLEngine.h>
#include <odl_audio_engine.h>

#include "cycles.h"

#ifndef EPOCHS
#define EPOCHS 1
#endif
#ifndef LAYERS
#define LAYERS 2
#endif
#ifndef LPC_CHUNKS
#define LPC_CHUNKS 0
#endif
#ifndef HIDDEN
#define HIDDEN 32
#endif

static const char* const kNames[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
typedef odl::AudioEngine<32, HIDDEN, 12, 64> EngineT;
static EngineT g_engine;
static int16_t g_audio[512];

int main() {
  uint32_t state = 12345;
  if (g_engine.begin(kNames, 9, nullptr, 1) != odl::kOk) return 1;
  float x[EngineT::kInputDim];
  for (int i = 0; i < 8; ++i) {  // one mini-batch of 8 utterance summaries
    for (int k = 0; k < EngineT::kInputDim; ++k) x[k] = (float)(odl::xorshift32(&state) >> 8) * 5.96e-8f;
    g_engine.add_sample(x, (uint16_t)(i % 9));
  }
  odl::TrainConfig cfg;
  cfg.epochs = EPOCHS;
  cfg.batch_size = 8;
  cfg.layers = LAYERS;
  counter_start();
  if (g_engine.train(cfg, nullptr, nullptr) != odl::kOk) return 1;
  const uint32_t train_ticks = counter_ticks();
  // audio: a 16 kHz stream; the warm-up chunk fills the frame buffer, each later chunk of 512
  // samples is 320 samples at 10 kHz = exactly 5 frames
  odl::LpcFrontEnd& fe = *g_engine.lpc();
  fe.begin(16000);
  for (int i = 0; i < 512; ++i) g_audio[i] = (int16_t)((int32_t)(odl::xorshift32(&state) >> 20) - 2048);
  fe.push_int16(g_audio, 512, nullptr, nullptr);
  counter_start();
  for (int c = 0; c < LPC_CHUNKS; ++c) fe.push_int16(g_audio, 512, nullptr, nullptr);
  const uint32_t lpc_ticks = counter_ticks();
  odl::Stats s = g_engine.stats();
  printf("train_ticks %lu\nlpc_ticks %lu\nframes %lu\n", (unsigned long)train_ticks, (unsigned long)lpc_ticks,
         (unsigned long)fe.frames_out());
  printf("engine_bytes %lu\nnet_bytes %lu\nnorm_bytes %lu\nlpc_bytes %lu\nstore_bytes %lu\n",
         (unsigned long)sizeof(EngineT), (unsigned long)s.net_bytes, (unsigned long)s.norm_bytes,
         (unsigned long)s.lpc_bytes, (unsigned long)s.store_bytes);
  printf("done\n");
  return 0;
}
