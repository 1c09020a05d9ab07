// Host unit tests of the ODLEngine library core (built and run by tests/test_engine.py).
// Every test compares against values computed independently (by hand or in double).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ODLEngine.h"
#include "odl_imu.h"
#include "odl_rng.h"

static int g_failures = 0;
static int g_checks = 0;
#define CHECK(cond)                                          \
  do {                                                       \
    ++g_checks;                                              \
    if (!(cond)) {                                           \
      ++g_failures;                                          \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                        \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                                                                   \
  do {                                                                                                          \
    ++g_checks;                                                                                                 \
    const double va = (a), vb = (b);                                                                            \
    if (!(fabs(va - vb) <= (tol))) {                                                                            \
      ++g_failures;                                                                                             \
      printf("FAIL %s:%d: %s = %.9g, %s = %.9g (tol %g)\n", __FILE__, __LINE__, #a, va, #b, vb, (double)(tol)); \
    }                                                                                                           \
  } while (0)

// ---------------------------------------------------------------- kernels
static void test_conv1d() {
  // T=4, Cin=2, K=2, Cout=2. x[t][i]; W[j][i][o]
  const float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const float W[8] = {1, 0, 0, 1, 1, -1, 2, 0};  // W[0][0]=(1,0) W[0][1]=(0,1) W[1][0]=(1,-1) W[1][1]=(2,0)
  const float b[2] = {0.5f, -1};
  float y[6];
  odl::conv1d_valid(x, 4, 2, W, b, 2, 2, y);
  // t=0: o0 = .5 + 1*1 + 2*0 + 3*1 + 4*2 = 12.5 ; o1 = -1 + 0 + 2 + -3 + 0 = -2
  // t=1: o0 = .5 + 3 + 0 + 5 + 12 = 20.5      ; o1 = -1 + 4 - 5 = -2
  // t=2: o0 = .5 + 5 + 7 + 16 = 28.5           ; o1 = -1 + 6 - 7 = -2
  const float e[6] = {12.5f, -2, 20.5f, -2, 28.5f, -2};
  for (int i = 0; i < 6; ++i) CHECK_NEAR(y[i], e[i], 0);
}

static void test_depthwise() {
  const float x[6] = {1, 10, 2, 20, 3, 30};  // T=3, C=2
  const float W[4] = {1, 0.5f, -1, 2};       // W[0]=(1,.5) W[1]=(-1,2)
  const float b[2] = {0, 1};
  float y[4];
  odl::depthwise_conv1d_valid(x, 3, 2, W, b, 2, y);
  // t0: c0 = 1 - 2 = -1; c1 = 1 + 5 + 40 = 46 ; t1: c0 = 2 - 3 = -1; c1 = 1 + 10 + 60 = 71
  const float e[4] = {-1, 46, -1, 71};
  for (int i = 0; i < 4; ++i) CHECK_NEAR(y[i], e[i], 0);
}

static void test_dense_relu_pool_gap() {
  const float x[3] = {1, -2, 3};
  const float W[6] = {1, 2, 3, 4, 5, 6};  // (in 3, out 2)
  const float b[2] = {0.25f, 0};
  float y[2];
  odl::dense(x, 3, W, b, 2, y);
  CHECK_NEAR(y[0], 0.25 + 1 - 6 + 15, 0);
  CHECK_NEAR(y[1], 2 - 8 + 18, 0);
  float r[4] = {-1, 0, 2, -0.0f};
  odl::relu_inplace(r, 4);
  CHECK(r[0] == 0 && r[1] == 0 && r[2] == 2 && r[3] == 0);
  const float p[10] = {1, 9, 3, 2, -5, 0, 4, 4, 7, -1};  // T=5, C=2, pool 2 -> T=2 (last row dropped)
  float py[4];
  odl::maxpool1d(p, 5, 2, 2, py);
  CHECK(py[0] == 3 && py[1] == 9 && py[2] == 4 && py[3] == 4);
  float g[2];
  odl::global_avg_pool1d(p, 5, 2, g);
  CHECK_NEAR(g[0], (1 + 3 - 5 + 4 + 7) / 5.0, 1e-6);
  CHECK_NEAR(g[1], (9 + 2 + 0 + 4 - 1) / 5.0, 1e-6);
}

static void test_dense_backward() {
  // y = b + x . W with x (3), W (3, 2); dy = (1, -2). By hand:
  //   gW[i][o] = x[i] * dy[o] = (1,-2), (-2,4), (3,-6);  gb = dy;  dx[i] = W[i][0] - 2 W[i][1] = -3, -5, -7
  const float x[3] = {1, -2, 3};
  const float W[6] = {1, 2, 3, 4, 5, 6};
  const float dy[2] = {1, -2};
  float gW[6] = {0.5f, 0, 0, 0, 0, 0};  // accumulates onto what is there
  float gb[2] = {0, 1};
  float dx[3] = {99, 99, 99};
  odl::dense_backward(x, 3, W, 2, dy, gW, gb, dx);
  const float egW[6] = {1.5f, -2, -2, 4, 3, -6};
  for (int i = 0; i < 6; ++i) CHECK_NEAR(gW[i], egW[i], 0);
  CHECK(gb[0] == 1 && gb[1] == -1);
  CHECK(dx[0] == -3 && dx[1] == -5 && dx[2] == -7);
  odl::dense_backward(x, 3, W, 2, dy, nullptr, nullptr, dx);  // input gradient only
  CHECK(dx[2] == -7);
  const float y[4] = {0, 2, -1, 0.5f};
  float d[4] = {1, 2, 3, 4};
  odl::relu_backward_inplace(y, d, 4);
  CHECK(d[0] == 0 && d[1] == 2 && d[2] == 0 && d[3] == 4);
}

// A tiny model: (4, 2) -> Conv1D(3, k2)+relu -> MaxPool(2)... kept tiny for hand checks:
// (4,2) conv k2 -> (3,3) relu; gap -> (1,3); dense 3->2 (feature_dim 2)
static const float kMean[2] = {1, 0};
static const float kStd[2] = {2, 1};
static const float kC0W[12] = {1, 0, -1, 0, 1, 0, 0, 0, 1, 1, 0, 0};  // (2,2,3)
static const float kC0B[3] = {0, 0, -1};
static const float kD0W[6] = {1, 0, 0, 1, 1, 1};  // (3,2)
static const float kD0B[2] = {0, 0.5f};
static const odl::LayerSpec kTinyLayers[3] = {
    {odl::kConv1D, odl::kActRelu, 2, 2, 3, kC0W, kC0B},
    {odl::kGlobalAvgPool1D, odl::kActNone, 0, 3, 3, nullptr, nullptr},
    {odl::kDense, odl::kActNone, 0, 3, 2, kD0W, kD0B},
};
static const char* const kTinyNames[2] = {"up", "down"};
static const float kTinyHeadW[4] = {1, -1, -1, 1};
static const float kTinyHeadB[2] = {0, 0};
static const odl::ModelSpec kTiny = {4, 2, 2, 2, 24, kMean, kStd, kTinyLayers, 3, kTinyNames, kTinyHeadW, kTinyHeadB};

static void reference_tiny(const float* raw, double* feat) {
  double xn[4][2];
  for (int t = 0; t < 4; ++t)
    for (int c = 0; c < 2; ++c) xn[t][c] = (raw[t * 2 + c] - kMean[c]) / kStd[c];
  double gap[3] = {0, 0, 0};
  for (int t = 0; t < 3; ++t)
    for (int o = 0; o < 3; ++o) {
      double a = kC0B[o];
      for (int j = 0; j < 2; ++j)
        for (int i = 0; i < 2; ++i) a += xn[t + j][i] * kC0W[(j * 2 + i) * 3 + o];
      gap[o] += (a > 0 ? a : 0) / 3.0;
    }
  for (int o = 0; o < 2; ++o) {
    feat[o] = kD0B[o];
    for (int i = 0; i < 3; ++i) feat[o] += gap[i] * kD0W[i * 2 + o];
  }
}

static void test_backbone() {
  CHECK(odl::validate_model(kTiny, 24) == odl::kOk);
  CHECK(odl::validate_model(kTiny, 16) == odl::kErrArenaTooSmall);  // (4,2)=8 ok, (3,3)=9 > 8
  odl::LayerSpec bad[3] = {kTinyLayers[0], kTinyLayers[1], kTinyLayers[2]};
  bad[2].in_channels = 4;
  odl::ModelSpec m = kTiny;
  m.layers = bad;
  CHECK(odl::validate_model(m, 24) == odl::kErrBadModel);
  const float raw[8] = {3, 1, -1, 2, 0.5f, -2, 4, 0.25f};
  float arena[24], f[2];
  double ref[2];
  CHECK(odl::run_backbone(kTiny, raw, arena, 24, f) == odl::kOk);
  reference_tiny(raw, ref);
  CHECK_NEAR(f[0], ref[0], 1e-6);
  CHECK_NEAR(f[1], ref[1], 1e-6);
  // through the engine template
  odl::Engine<24, 2, 3, 8> eng;
  CHECK(eng.extract_features(raw, f) == odl::kErrNotBegun);
  CHECK(eng.begin(kTiny) == odl::kOk);
  float f2[2];
  CHECK(eng.extract_features(raw, f2) == odl::kOk);
  CHECK(f2[0] == f[0] && f2[1] == f[1]);
  odl::Engine<16, 2, 3, 8> small;
  CHECK(small.begin(kTiny) == odl::kErrArenaTooSmall);
  odl::Engine<24, 3, 3, 8> wrongdim;
  CHECK(wrongdim.begin(kTiny) == odl::kErrFeatureDim);
  odl::Engine<24, 2, 1, 8> fewclasses;
  CHECK(fewclasses.begin(kTiny) == odl::kErrTooManyClasses);
}

static void test_exp() {
  double worst = 0;
  for (int i = 0; i < 87000; ++i) {
    const float x = -(float)i * 0.001f;
    const double e = exp((double)x);
    const double r = fabs(odl::exp_nonpos(x) - e) / e;
    if (r > worst) worst = r;
  }
  printf("exp_nonpos max relative error on [-87, 0]: %.3g\n", worst);
  CHECK(worst < 5e-7);
  CHECK(odl::exp_nonpos(0.0f) == 1.0f);
  CHECK(odl::exp_nonpos(-100.0f) == 0.0f);
}

// ---------------------------------------------------------------- head
static double head_loss_double(const float* W, const float* b, const float* X, const uint16_t* y, int n, int nc, int fd,
                               double wd) {
  double total = 0;
  for (int s = 0; s < n; ++s) {
    double z[8], zmax = -1e300;
    for (int c = 0; c < nc; ++c) {
      z[c] = b[c];
      for (int f = 0; f < fd; ++f) z[c] += (double)W[c * fd + f] * X[s * fd + f];
      if (z[c] > zmax) zmax = z[c];
    }
    double sum = 0;
    for (int c = 0; c < nc; ++c) sum += exp(z[c] - zmax);
    total += log(sum) + zmax - z[y[s]];
  }
  double reg = 0;
  for (int i = 0; i < nc * fd; ++i) reg += 0.5 * wd * (double)W[i] * W[i];
  return total / n + reg;
}

template <uint16_t FD, uint16_t MC, uint16_t CAP>
struct Bench {
  odl::Engine<24, FD, MC, CAP> e;
};

static void test_gradient_finite_differences() {
  // Engine with the tiny model but FeatureDim 2 is too small to be interesting:
  // use the head/store views directly with FD=5, 3 classes, 6 samples.
  const int FD = 5, NC = 3, N = 6;
  float W[NC * FD], b[NC], vW[NC * FD], vb[NC], gW[NC * FD], gb[NC], probs[NC];
  char names[NC][odl::kClassNameBytes];
  float feats[N * FD];
  uint16_t labels[N], sessions[N], order[N];
  odl::HeadView h = {FD, NC, 0, W, b, vW, vb, gW, gb, probs, names};
  odl::StoreView s = {FD, N, 0, 0, 0, 0, 0, feats, labels, sessions, order};
  odl::store_clear(s, 7);
  CHECK(h.num_classes == 0);
  CHECK(odl::head_add_class(h, "a") == 0);
  CHECK(odl::head_add_class(h, "b") == 1);
  CHECK(odl::head_add_class(h, "c") == 2);
  uint32_t rng = 12345;
  for (int i = 0; i < NC * FD; ++i) W[i] = (float)((int)(odl::xorshift32(&rng) % 2001) - 1000) / 1000.0f;
  for (int c = 0; c < NC; ++c) b[c] = (float)((int)(odl::xorshift32(&rng) % 201) - 100) / 100.0f;
  float x[FD];
  for (int k = 0; k < N; ++k) {
    for (int f = 0; f < FD; ++f) x[f] = (float)((int)(odl::xorshift32(&rng) % 2001) - 1000) / 500.0f;
    CHECK(odl::store_add(s, h, x, (uint16_t)(k % NC)) == odl::kOk);
  }
  CHECK(odl::store_add(s, h, x, 3) == odl::kErrBadLabel);
  const double wd = 0.01;
  // one full-batch step with momentum 0: W_new = W - lr * g  =>  g = (W - W_new) / lr
  float W0[NC * FD], b0[NC];
  memcpy(W0, W, sizeof(W));
  memcpy(b0, b, sizeof(b));
  odl::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch_size = N;
  cfg.lr = 1.0f;
  cfg.momentum = 0.0f;
  cfg.weight_decay = (float)wd;
  cfg.shuffle = false;
  CHECK(odl::head_train(h, s, cfg, nullptr, nullptr) == odl::kOk);
  // central differences in double on the float weights
  const double eps = 1e-3;
  double worst = 0;
  for (int i = 0; i < NC * FD + NC; ++i) {
    float Wp[NC * FD], bp[NC];
    memcpy(Wp, W0, sizeof(W0));
    memcpy(bp, b0, sizeof(b0));
    float* p = i < NC * FD ? &Wp[i] : &bp[i - NC * FD];
    const float orig = *p;
    *p = (float)(orig + eps);
    const double lp = head_loss_double(Wp, bp, feats, labels, N, NC, FD, i < NC * FD ? wd : 0);
    *p = (float)(orig - eps);
    const double lm = head_loss_double(Wp, bp, feats, labels, N, NC, FD, i < NC * FD ? wd : 0);
    const double step = (double)(float)(orig + eps) - (double)(float)(orig - eps);
    const double fd_grad = (lp - lm) / step;
    const double engine_grad = i < NC * FD ? (double)W0[i] - W[i] : (double)b0[i - NC * FD] - b[i - NC * FD];
    const double err = fabs(fd_grad - engine_grad);
    if (err > worst) worst = err;
  }
  printf("head gradient vs central differences: max abs error %.3g\n", worst);
  // float32 forward pass (~1e-7 relative) + O(eps^2) truncation: 1e-4 is ample and still
  // catches a missing 1/B, a wrong sign or a missing decay term (all >= 1e-2 here).
  CHECK(worst < 1e-4);

  // bias-only: W untouched, b moves by the same gradient
  memcpy(W, W0, sizeof(W0));
  memcpy(b, b0, sizeof(b0));
  cfg.mode = odl::kTrainBiasOnly;
  CHECK(odl::head_train(h, s, cfg, nullptr, nullptr) == odl::kOk);
  CHECK(memcmp(W, W0, sizeof(W0)) == 0);
  bool moved = false;
  for (int c = 0; c < NC; ++c) moved = moved || b[c] != b0[c];
  CHECK(moved);
  // bad configs
  cfg.batch_size = 0;
  CHECK(odl::head_train(h, s, cfg, nullptr, nullptr) == odl::kErrBadArgument);
  cfg.batch_size = 2;
  cfg.momentum = 1.0f;
  CHECK(odl::head_train(h, s, cfg, nullptr, nullptr) == odl::kErrBadArgument);
}

static bool count_epochs(const odl::EpochResult& r, void* user) {
  int* n = (int*)user;
  ++*n;
  return r.epoch < 3;  // stop after the third epoch
}

static void test_engine_classes_and_replay() {
  odl::Engine<24, 2, 4, 50> eng;
  CHECK(eng.begin(kTiny, 3) == odl::kOk);
  CHECK(eng.num_classes() == 2);
  CHECK(strcmp(eng.class_name(1), "down") == 0);
  CHECK(eng.weights()[0] == 1 && eng.weights()[3] == 1);
  CHECK(eng.add_class("left") == 2);
  CHECK(eng.add_class("left") == odl::kErrDuplicateClass);
  CHECK(eng.add_class("") == odl::kErrBadArgument);
  CHECK(eng.add_class("a-very-long-class-name") == 3);
  CHECK(strcmp(eng.class_name(3), "a-very-long-cla") == 0);  // 15 chars kept
  CHECK(eng.add_class("five") == odl::kErrTooManyClasses);
  CHECK(eng.weights()[2 * 2] == 0 && eng.weights()[2 * 2 + 1] == 0 && eng.bias()[2] == 0);
  // a new class with a zero row gets logit b=0: with features (0,0) all four tie
  odl::Prediction p;
  const float zero[2] = {0, 0};
  CHECK(eng.predict_features(zero, &p) == odl::kOk);
  CHECK(p.num_classes == 4);
  CHECK_NEAR(p.probs[2], 0.25, 1e-6);

  // reservoir: 100 samples of class 0 then 400 of class 1 into 50 slots
  uint32_t counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 500; ++i) {
    const float f[2] = {(float)i, (float)(i < 100 ? 0 : 1)};
    CHECK(eng.add_sample(f, (uint16_t)(i < 100 ? 0 : 1)) == odl::kOk);
  }
  CHECK(eng.num_samples() == 50);
  CHECK(eng.stats().samples_seen == 500);
  bool consistent = true;
  for (uint32_t i = 0; i < eng.num_samples(); ++i) {
    const float* f = eng.sample_features(i);
    const int y = eng.sample_label(i);
    counts[y]++;
    consistent = consistent && (int)f[1] == y && ((f[0] < 100) == (y == 0));
  }
  CHECK(consistent);  // every kept vector is intact and carries its own label
  printf("reservoir after 100 x class0 + 400 x class1 into 50 slots: %u / %u\n", counts[0], counts[1]);
  // expected 10 of class 0 (20 %); P(count outside [3, 20]) < 1e-3 for a uniform reservoir
  CHECK(counts[0] >= 3 && counts[0] <= 20);
  // same seed -> same reservoir
  odl::Engine<24, 2, 4, 50> eng2;
  CHECK(eng2.begin(kTiny, 3) == odl::kOk);
  eng2.add_class("left");
  eng2.add_class("a-very-long-class-name");
  for (int i = 0; i < 500; ++i) {
    const float f[2] = {(float)i, (float)(i < 100 ? 0 : 1)};
    eng2.add_sample(f, (uint16_t)(i < 100 ? 0 : 1));
  }
  bool same = true;
  for (uint32_t i = 0; i < 50; ++i) same = same && eng2.sample_features(i)[0] == eng.sample_features(i)[0];
  CHECK(same);

  // sessions: use_replay=false sees only the new session
  eng.new_session();
  for (int i = 0; i < 60; ++i) {  // the reservoir keeps ~50/550 of each new sample
    const float f[2] = {-1.0f - i, 2.0f};
    eng.add_sample(f, 2);
  }
  odl::EvalResult ev;
  CHECK(eng.evaluate(&ev, false) == odl::kOk);
  uint32_t in_session = 0;
  for (uint32_t i = 0; i < eng.num_samples(); ++i) in_session += eng.sample_session(i) == 1;
  CHECK(ev.n == in_session && in_session >= 1);
  CHECK(eng.evaluate(&ev, true) == odl::kOk);
  CHECK(ev.n == 50);
  uint32_t cm_total = 0, cm_diag = 0;
  for (int t = 0; t < 4; ++t)
    for (int q = 0; q < 4; ++q) {
      cm_total += ev.confusion[t * ev.stride + q];
      if (t == q) cm_diag += ev.confusion[t * ev.stride + q];
    }
  CHECK(cm_total == 50 && cm_diag == ev.correct);
  CHECK_NEAR(ev.accuracy, (double)ev.correct / 50.0, 1e-7);

  // training with replay on the new class + old ones; early stop via the callback
  odl::TrainConfig cfg;
  cfg.epochs = 10;
  cfg.lr = 0.01f;
  int epochs_seen = 0;
  CHECK(eng.train(cfg, count_epochs, &epochs_seen) == odl::kOk);
  CHECK(epochs_seen == 3);
  eng.clear_samples();
  CHECK(eng.num_samples() == 0);
  CHECK(eng.train(cfg) == odl::kErrNoSamples);
  eng.reset();
  CHECK(eng.num_classes() == 2 && eng.weights()[0] == 1);
}

// ---------------------------------------------------------------- blob
static void test_crc_and_blob() {
  CHECK(odl::crc32((const uint8_t*)"123456789", 9) == 0xCBF43926u);
  CHECK(odl::crc32((const uint8_t*)"6789", 4, odl::crc32((const uint8_t*)"12345", 5)) == 0xCBF43926u);
  odl::Engine<24, 2, 4, 8> eng;
  eng.begin(kTiny);
  eng.add_class("third");
  uint8_t blob[256];
  uint32_t n = 0;
  CHECK(eng.serialize(blob, 10, &n) == odl::kErrBufferTooSmall);
  CHECK(eng.serialize(blob, sizeof(blob), &n) == odl::kOk);
  CHECK(n == odl::blob_size_for(3, 2) && n == 16 + 48 + 24 + 12 + 4);
  CHECK(memcmp(blob, "ODLW", 4) == 0);
  // every single-byte corruption (all positions x all 255 non-zero xor masks) is rejected
  uint32_t accepted = 0, tried = 0;
  for (uint32_t pos = 0; pos < n; ++pos)
    for (int m = 1; m < 256; ++m) {
      blob[pos] ^= (uint8_t)m;
      odl::Engine<24, 2, 4, 8> other;
      other.begin(kTiny);
      if (other.deserialize(blob, n) == odl::kOk) ++accepted;
      ++tried;
      blob[pos] ^= (uint8_t)m;
    }
  printf("single-byte corruptions rejected: %u of %u\n", tried - accepted, tried);
  CHECK(accepted == 0);
  odl::Engine<24, 2, 4, 8> other;
  other.begin(kTiny);
  CHECK(other.deserialize(blob, n - 1) == odl::kErrBlobSize);
  CHECK(other.deserialize(blob, n + 4) == odl::kErrBlobSize);
  uint8_t v2[256];
  memcpy(v2, blob, n);
  v2[4] = 2;
  CHECK(other.deserialize(v2, n) == odl::kErrBlobVersion);
  v2[4] = 1;
  v2[0] = 'X';
  CHECK(other.deserialize(v2, n) == odl::kErrBlobMagic);
  CHECK(other.deserialize(blob, n) == odl::kOk);
  CHECK(other.num_classes() == 3 && strcmp(other.class_name(2), "third") == 0);
  odl::Engine<24, 2, 2, 8> tiny;  // MaxClasses 2 < 3
  tiny.begin(kTiny);
  CHECK(tiny.deserialize(blob, n) == odl::kErrBlobShape);
  uint8_t again[256];
  uint32_t n2 = 0;
  CHECK(other.serialize(again, sizeof(again), &n2) == odl::kOk);
  CHECK(n2 == n && memcmp(again, blob, n) == 0);
}

// ---------------------------------------------------------------- storage
static void test_storage_interrupted_everywhere() {
  typedef odl::Engine<24, 2, 4, 8> E;
  E a;
  a.begin(kTiny);
  odl::RamStorage<256> flash;
  CHECK(a.load(flash) == odl::kErrStorageEmpty);
  CHECK(a.save(flash) == odl::kOk);  // version A in slot 0
  uint8_t blobA[256], blobB[256], got[256];
  uint32_t nA = 0, nB = 0, ng = 0;
  a.serialize(blobA, sizeof(blobA), &nA);
  // version B: one more class and different weights
  E b;
  b.begin(kTiny);
  b.add_class("new");
  b.head().W[0] = 42.0f;
  b.serialize(blobB, sizeof(blobB), &nB);
  const uint32_t full = 256 + 16 + nB;  // erase slot + header + blob
  uint32_t old_ok = 0, new_ok = 0, bad = 0;
  for (uint32_t k = 0; k <= full + 1; ++k) {
    for (int round = 0; round < 2; ++round) {
      // round 0: A is the only record; round 1: A is newest and an older record sits in the
      // other slot (the save must overwrite the older one, never A)
      odl::RamStorage<256> f;
      E w;
      w.begin(kTiny);
      if (round == 1) {
        E older;
        older.begin(kTiny);
        older.head().b[0] = -7.0f;
        older.save(f);
      }
      a.save(f);
      f.set_fail_after((long)k);
      const odl::Status st = b.save(f);
      f.set_fail_after(-1);
      E r;
      r.begin(kTiny);
      const odl::Status ls = r.load(f);
      r.serialize(got, sizeof(got), &ng);
      const bool is_old = ls == odl::kOk && ng == nA && memcmp(got, blobA, nA) == 0;
      const bool is_new = ls == odl::kOk && ng == nB && memcmp(got, blobB, nB) == 0;
      if (is_old) ++old_ok;
      if (is_new) ++new_ok;
      if (!is_old && !is_new) {
        ++bad;
        printf("FAIL interrupted at byte %u (round %d): load status %d\n", k, round, (int)ls);
      }
      if (st == odl::kOk) CHECK(is_new);  // a save that reports success must load back
      if (k < full) CHECK(st != odl::kOk);
    }
  }
  printf("storage: %u interruption points x 2 layouts -> old %u, new %u, broken %u\n", full + 2, old_ok, new_ok, bad);
  CHECK(bad == 0);
  CHECK(new_ok >= 2);
  // repeated saves alternate slots and the newest wins
  odl::RamStorage<256> f;
  for (int i = 0; i < 5; ++i) {
    b.head().b[0] = (float)i;
    CHECK(b.save(f) == odl::kOk);
  }
  E r;
  r.begin(kTiny);
  CHECK(r.load(f) == odl::kOk && r.bias()[0] == 4.0f);
  uint32_t seq = 0;
  CHECK(odl::storage_newest(f, &seq) == 0 && seq == 5);
  odl::RamStorage<64> tiny;
  CHECK(b.save(tiny) == odl::kErrStorageTooSmall);
}

// The same property at the storage layer with a realistic record (a 64-feature x 8-class
// blob, 2,228 bytes, in 4 KB slots like the board's): every interruption point is tried.
static void test_storage_realistic_size() {
  static const uint32_t kBlob = odl::blob_size_for(8, 64);
  static uint8_t recA[kBlob + odl::kSlotHeaderBytes], recB[kBlob + odl::kSlotHeaderBytes];
  static uint8_t got[kBlob + odl::kSlotHeaderBytes];
  uint32_t rng = 99;
  for (uint32_t i = 0; i < kBlob; ++i) {
    recA[odl::kSlotHeaderBytes + i] = (uint8_t)odl::xorshift32(&rng);
    recB[odl::kSlotHeaderBytes + i] = (uint8_t)odl::xorshift32(&rng);
  }
  static uint8_t blobA[kBlob], blobB[kBlob];
  memcpy(blobA, recA + odl::kSlotHeaderBytes, kBlob);
  memcpy(blobB, recB + odl::kSlotHeaderBytes, kBlob);
  const uint32_t total = 4096 + odl::kSlotHeaderBytes + kBlob;
  uint32_t bad = 0, newer = 0;
  for (uint32_t k = 0; k <= total; ++k) {
    static odl::RamStorage<4096> f;
    f = odl::RamStorage<4096>();
    CHECK(odl::storage_save(f, recA, kBlob) == odl::kOk);
    f.set_fail_after((long)k);
    const odl::Status st = odl::storage_save(f, recB, kBlob);
    f.set_fail_after(-1);
    uint32_t n = 0;
    const odl::Status ls = odl::storage_load(f, got, sizeof(got), &n);
    const bool is_old = ls == odl::kOk && n == kBlob && memcmp(got + odl::kSlotHeaderBytes, blobA, kBlob) == 0;
    const bool is_new = ls == odl::kOk && n == kBlob && memcmp(got + odl::kSlotHeaderBytes, blobB, kBlob) == 0;
    if (!is_old && !is_new) ++bad;
    if (is_new) ++newer;
    if (k < total && st == odl::kOk) ++bad;
  }
  printf("storage 64x8 blob: %u interruption points, broken %u, completed %u\n", total + 1, bad, newer);
  CHECK(bad == 0);
  CHECK(newer == 1);
}

// ---------------------------------------------------------------- IMU layer
static void test_lsm9ds1_gyro_scale() {
  // Arduino_LSM9DS1 returns raw * 2000 / 32768; the datasheet sensitivity at +-2000 dps is
  // 70 mdps/LSB (LSM9DS1 datasheet, Table 3, G_So).
  const int raws[] = {-32768, -12000, -1, 1, 437, 12345, 32767};
  for (int raw : raws) {
    const float library = (float)(raw * 2000.0 / 32768.0);
    const double want = raw * 0.070;
    CHECK_NEAR(odl::lsm9ds1_gyro_dps(library), want, 1e-6 * fabs(want) + 1e-7);
  }
  // the library's value is 12.5 % low: 2000/32768 / 0.070 = 0.8719
  CHECK_NEAR(odl::kLsm9ds1LibraryDpsPerLsb / odl::kLsm9ds1DatasheetDpsPerLsb, 0.871931, 1e-5);
}

// RMS of the 25 Hz output of a tone of frequency f sampled by the sensor at fs, decimated either
// by averaging every sensor sample of a 40 ms tick (odl::SampleAverager) or by taking the latest.
static double decimated_rms(double f, double fs, bool average) {
  odl::SampleAverager<1> avg;
  double sum2 = 0.0, t_sensor = 0.0, latest = 0.0;
  long n = 0, ticks = 0;
  for (long k = 1; k <= 1000; ++k) {  // 40 s of output
    const double tick = k * 0.04;
    while (t_sensor <= tick) {
      const float v = (float)sin(2.0 * M_PI * f * t_sensor + 0.3);
      avg.add(&v);
      latest = v;
      t_sensor = (double)(++n) / fs;
    }
    float out = 0.0f;
    const bool ok = avg.take(&out);
    CHECK(ok);
    const double y = average ? out : latest;
    sum2 += y * y;
    ++ticks;
  }
  return sqrt(sum2 / ticks);
}

static void test_anti_alias_average() {
  const double rates[] = {119.0, 100.0};  // LSM9DS1 (Rev1), BMI270 (Rev2)
  for (double fs : rates) {
    const double alias_latest = decimated_rms(20.0, fs, false), alias_avg = decimated_rms(20.0, fs, true);
    const double slow_latest = decimated_rms(1.0, fs, false), slow_avg = decimated_rms(1.0, fs, true);
    printf("anti-alias at %.0f Hz: 20 Hz tone RMS latest-sample %.3f, averaged %.3f; 1 Hz tone %.3f vs %.3f\n", fs,
           alias_latest, alias_avg, slow_latest, slow_avg);
    CHECK(alias_latest > 0.6);              // latest-sample decimation folds 20 Hz to 5 Hz at full amplitude
    CHECK(alias_avg < 0.5 * alias_latest);  // boxcar over 40 ms: gain ~0.2-0.4 at 20 Hz
    CHECK(slow_avg > 0.98 * slow_latest);   // the motion band passes
  }
  odl::SampleAverager<3> a;
  float out[3];
  CHECK(!a.take(out));  // nothing added: the caller falls back to the latest register
  const float s1[3] = {1, 2, 3}, s2[3] = {3, 4, -3};
  a.add(s1);
  a.add(s2);
  CHECK(a.count() == 2);
  CHECK(a.take(out) && out[0] == 2.0f && out[1] == 3.0f && out[2] == 0.0f);
  CHECK(a.count() == 0 && !a.take(out));
}

struct FakeImuBus : odl::ImuBus {
  int rev1_answers_from = -1;  // the n-th (0-based) probe of 0x6B is the first that ACKs; -1 never
  int rev2_answers_from = -1;
  int start_fails = 0;  // start() fails this many times first
  int rev1_probes = 0, rev2_probes = 0, waits = 0;
  uint32_t waited_ms = 0;
  bool answers(uint8_t addr) override {
    if (addr == odl::kLsm9ds1AccelGyroAddr) return rev1_answers_from >= 0 && rev1_probes++ >= rev1_answers_from;
    if (addr == odl::kBmi270Addr) return rev2_answers_from >= 0 && rev2_probes++ >= rev2_answers_from;
    return false;
  }
  bool start(odl::ImuRevision) override { return start_fails-- <= 0; }
  void wait_ms(uint32_t ms) override {
    ++waits;
    waited_ms += ms;
  }
};

static void test_imu_probe_retries() {
  FakeImuBus late;  // Rev1 that answers only on the third attempt
  late.rev1_answers_from = 2;
  CHECK(odl::probe_imu(late, 5, 20) == odl::kImuRev1);
  CHECK(late.waits == 2 && late.waited_ms == 40);
  FakeImuBus once;
  once.rev1_answers_from = 1;
  CHECK(odl::probe_imu(once, 1, 20) == odl::kImuNone);  // one attempt misses it...
  CHECK(odl::probe_imu(once, 1, 20) == odl::kImuRev1);  // ...the re-probe of the next command finds it
  FakeImuBus rev2;
  rev2.rev2_answers_from = 0;
  rev2.start_fails = 1;  // begin() fails once
  CHECK(odl::probe_imu(rev2, 3, 10) == odl::kImuRev2);
  FakeImuBus none;
  CHECK(odl::probe_imu(none, 4, 10) == odl::kImuNone && none.waits == 3);
}

// ---------------------------------------------------------------- non-finite values
static void put_f32_le(uint8_t* p, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(u >> (8 * i));
}

static void test_non_finite_rejected() {
  odl::Engine<24, 2, 4, 8> eng;
  CHECK(eng.begin(kTiny) == odl::kOk);
  uint8_t blob[256];
  uint32_t n = 0;
  CHECK(eng.serialize(blob, sizeof(blob), &n) == odl::kOk);
  const float bad[3] = {NAN, INFINITY, -INFINITY};
  const uint32_t weights_at = 16 + 2 * 16;  // header + 2 class names
  for (float v : bad)
    for (uint32_t at : (const uint32_t[2]){weights_at, n - 8}) {  // a weight, the last bias
      uint8_t b2[256];
      memcpy(b2, blob, n);
      put_f32_le(b2 + at, v);
      const uint32_t crc = odl::crc32(b2, n - 4);
      for (int i = 0; i < 4; ++i) b2[n - 4 + i] = (uint8_t)(crc >> (8 * i));  // a valid CRC: only the value is wrong
      odl::Engine<24, 2, 4, 8> other;
      other.begin(kTiny);
      other.add_class("kept");
      CHECK(other.deserialize(b2, n) == odl::kErrNonFinite);
      CHECK(other.num_classes() == 3 && strcmp(other.class_name(2), "kept") == 0);  // nothing changed
      CHECK(other.weights()[0] == eng.weights()[0]);
    }
  const float nan_feat[2] = {1.0f, NAN}, inf_feat[2] = {INFINITY, 0.0f};
  CHECK(eng.add_sample(nan_feat, 0) == odl::kErrNonFinite);
  CHECK(eng.add_sample(inf_feat, 1) == odl::kErrNonFinite);
  CHECK(eng.num_samples() == 0 && eng.stats().samples_seen == 0);
  CHECK(strcmp(odl::status_str(odl::kErrNonFinite), "non-finite value (NaN or Inf) refused, nothing changed") == 0);
}

static int g_epochs_seen = 0, g_non_finite_reported = 0;
static bool count_diverged_epochs(const odl::EpochResult& r, void*) {
  ++g_epochs_seen;
  if (!odl::is_finite(r.loss)) ++g_non_finite_reported;
  return true;
}

static void test_diverged_training_restores_weights() {
  odl::Engine<24, 2, 4, 16> eng;
  CHECK(eng.begin(kTiny) == odl::kOk);
  for (int i = 0; i < 16; ++i) {
    const float f[2] = {(float)(i % 2 ? 30 : -30), (float)(i % 3) * 20.0f};
    CHECK(eng.add_sample(f, (uint16_t)(i % 2)) == odl::kOk);
  }
  odl::TrainConfig ok;
  ok.epochs = 2;
  ok.lr = 0.01f;
  CHECK(eng.train(ok) == odl::kOk);  // some trained weights to protect
  float W0[8], b0[4];
  memcpy(W0, eng.weights(), sizeof(float) * 4);
  memcpy(b0, eng.bias(), sizeof(float) * 2);
  odl::TrainConfig wild = ok;
  wild.epochs = 50;
  wild.lr = 3e37f;  // overflows to Inf, then NaN, within the first epoch
  wild.momentum = 0.9f;
  g_epochs_seen = 0;
  CHECK(eng.train(wild, count_diverged_epochs, nullptr) == odl::kErrDiverged);
  CHECK(g_epochs_seen < 50 && g_non_finite_reported == 0);  // stopped, and never reported a NaN loss
  CHECK(memcmp(W0, eng.weights(), sizeof(float) * 4) == 0 && memcmp(b0, eng.bias(), sizeof(float) * 2) == 0);
  CHECK(eng.num_classes() == 2 && strcmp(eng.class_name(1), "down") == 0);
  CHECK(eng.train(ok) == odl::kOk);  // training still works afterwards
}

int main() {
  test_non_finite_rejected();
  test_diverged_training_restores_weights();
  test_lsm9ds1_gyro_scale();
  test_anti_alias_average();
  test_imu_probe_retries();
  test_conv1d();
  test_depthwise();
  test_dense_relu_pool_gap();
  test_dense_backward();
  test_backbone();
  test_exp();
  test_gradient_finite_differences();
  test_engine_classes_and_replay();
  test_crc_and_blob();
  test_storage_interrupted_everywhere();
  test_storage_realistic_size();
  printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
