// The int8 path (odl_int8.h) as a command-line tool for
// tests/test_int8_training.py and benchmarks/device_int8.py. Binary
// little-endian stdin / stdout:
//   int8_cli forward        in: u32 n, n x (T*C) int8 windows
//                           out: per window, every layer's int8 output in order
//   int8_cli windows        (built with a sketch's odl_model_data.h beside its int8 header)
//                           in: u32 n, n x (T*C) f32 raw windows; out: f32 feature
//                           scale, i32 feature zero, n x fd int8 features (qquantize_window,
//                           qrun_backbone: the board's path from a recorded window)
//   int8_cli train E B lr mu qas seed
//                           in: u32 n, u16 nc, u16 fd, f32 x_scale, i32 x_zero,
//                           n x fd int8 features,
//                               n u16 labels, nc x fd f32 head W (class-major),
//                               nc f32 b
//                           out: per epoch f32 loss, f32 accuracy; then f32
//                           s_W, nc x fd int8 Wq,
//                                nc i32 bq, nc x fd f32 latent W, nc f32 latent
//                                b
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/harness.h"

#include "odl_int8.h"
#include "odl_int8_model_data.h"
#if __has_include("odl_model_data.h")
#include "odl_model_data.h"
#define INT8_CLI_WINDOWS 1
#endif

namespace {

const uint32_t kMaxN = 4096, kMaxFd = 128, kMaxC = 16;
int8_t g_arena[16384];
int8_t g_in[4096];
int8_t g_feat[kMaxFd];
int8_t g_q[kMaxN * kMaxFd];
float g_f[kMaxN * kMaxFd];
uint16_t g_labels[kMaxN], g_sessions[kMaxN], g_order[kMaxN];
float g_W[kMaxC * kMaxFd], g_b[kMaxC];
int8_t g_Wq[kMaxC * kMaxFd];
int32_t g_bq[kMaxC];
float g_latW[kMaxC * kMaxFd], g_latb[kMaxC], g_vW[kMaxC * kMaxFd], g_vb[kMaxC], g_gW[kMaxC * kMaxFd], g_gb[kMaxC];
float g_probs[kMaxC], g_xr[kMaxFd];

void dump_layer(uint16_t, const int8_t* y, uint32_t n, void*) { fwrite(y, 1, n, stdout); }

bool log_epoch(const odl::EpochResult& r, void*) {
  fwrite(&r.loss, 4, 1, stdout);
  fwrite(&r.accuracy, 4, 1, stdout);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "forward") == 0) {
    const odl::QModelSpec& m = kOdlQModel;
    if (odl::qvalidate_model(m, sizeof(g_arena)) != odl::kOk) return 3;
    uint32_t n = 0;
    read_exact(&n, 4);
    const uint32_t vals = (uint32_t)m.input_len * m.input_channels;
    for (uint32_t i = 0; i < n; ++i) {
      read_exact(g_in, vals);
      if (odl::qrun_backbone(m, g_in, g_arena, sizeof(g_arena), g_feat, dump_layer, nullptr) != odl::kOk) return 4;
    }
    return 0;
  }
#ifdef INT8_CLI_WINDOWS
  if (argc == 2 && strcmp(argv[1], "windows") == 0) {
    const odl::QModelSpec& m = kOdlQModel;
    if (odl::qvalidate_model(m, sizeof(g_arena)) != odl::kOk) return 3;
    uint32_t n = 0;
    read_exact(&n, 4);
    const uint32_t vals = (uint32_t)m.input_len * m.input_channels;
    if (vals > sizeof(g_in)) return 5;
    const int32_t zero = m.feature_zero;
    fwrite(&m.feature_scale, 4, 1, stdout);
    fwrite(&zero, 4, 1, stdout);
    for (uint32_t i = 0; i < n; ++i) {
      read_exact(g_f, 4u * vals);
      odl::qquantize_window(kOdlModel, m, g_f, g_in);
      if (odl::qrun_backbone(m, g_in, g_arena, sizeof(g_arena), g_feat) != odl::kOk) return 4;
      fwrite(g_feat, 1, m.feature_dim, stdout);
    }
    return 0;
  }
#endif
  if (argc == 8 && strcmp(argv[1], "train") == 0) {
    odl::TrainConfig cfg;
    cfg.epochs = (uint16_t)atoi(argv[2]);
    cfg.batch_size = (uint16_t)atoi(argv[3]);
    cfg.lr = (float)atof(argv[4]);
    cfg.momentum = (float)atof(argv[5]);
    const bool qas = atoi(argv[6]) != 0;
    const uint32_t seed = (uint32_t)strtoul(argv[7], nullptr, 10);
    uint32_t n = 0;
    uint16_t nc = 0, fd = 0;
    float xs = 0;
    int32_t xz = 0;
    read_exact(&n, 4);
    read_exact(&nc, 2);
    read_exact(&fd, 2);
    read_exact(&xs, 4);
    read_exact(&xz, 4);
    if (n > kMaxN || fd > kMaxFd || nc > kMaxC) return 5;
    read_exact(g_q, (size_t)n * fd);
    read_exact(g_labels, 2u * n);
    read_exact(g_W, 4u * nc * fd);
    read_exact(g_b, 4u * nc);
    odl::StoreView s = odl::StoreView();
    s.feature_dim = fd;
    s.capacity = kMaxN;
    s.features = g_f;
    s.labels = g_labels;
    s.sessions = g_sessions;
    s.order = g_order;
    odl::store_clear(s, seed);
    s.count = n;
    odl::QHeadView h = {fd,   kMaxC, 0,    g_Wq,    g_bq, g_latW, g_latb, g_vW,
                        g_vb, g_gW,  g_gb, g_probs, g_xr, 0.0f,   xs,     (int16_t)xz};
    odl::qhead_quantize(h, g_W, g_b, nc);
    uint32_t steps = 0;
    const odl::Status st = odl::qhead_train(h, s, g_q, cfg, qas, log_epoch, nullptr, &steps);
    if (st != odl::kOk) {
      fprintf(stderr, "train: %s\n", odl::status_str(st));
      return 6;
    }
    fwrite(&h.w_scale, 4, 1, stdout);
    fwrite(g_Wq, 1, (size_t)nc * fd, stdout);
    fwrite(g_bq, 4, nc, stdout);
    fwrite(g_latW, 4, (size_t)nc * fd, stdout);
    fwrite(g_latb, 4, nc, stdout);
    return 0;
  }
  fprintf(stderr, "usage: int8_cli forward | train E B lr mu qas seed\n");
  return 1;
}
