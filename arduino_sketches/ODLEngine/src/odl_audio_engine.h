// odl_audio_engine.h - Lab 2's engine: no backbone; the board computes LPC cepstra from its
// microphone (odl_lpc.h), summarizes each utterance (mean + std of every coefficient), learns an
// input standardizer from what it records and trains a two-layer network from scratch
// (odl_mlp.h). It implements the protocol's EngineIface, so odl::Protocol serves it unchanged.
//
//   static odl::AudioEngine<ODL_MAX_FRAMES, ODL_HIDDEN, ODL_MAX_CLASSES, ODL_REPLAY_CAPACITY> engine;
//   engine.begin(kClassNames, ODL_NUM_CLASSES, &storage);
//   static odl::Protocol proto(engine, sensor, io, ODL_FIRMWARE_VERSION);
//
// A window (RECORD / PREDICT) is one utterance: up to MaxFrames rows of kLpcCeps cepstra
// (time-major); the sensor says how many rows hold data (Sensor::window_frames()).
// No heap: every buffer is a member with a compile-time size. Portable C++14.
#ifndef ODL_AUDIO_ENGINE_H
#define ODL_AUDIO_ENGINE_H

#include "odl_numerics.h"
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "odl_blob.h"
#include "odl_head.h"
#include "odl_lpc.h"
#include "odl_mlp.h"
#include "odl_protocol.h"
#include "odl_storage.h"
#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

template <uint16_t MaxFrames, uint16_t Hidden, uint16_t MaxClasses, uint16_t Capacity>
class AudioEngine : public EngineIface {
 public:
  static const uint16_t kCoeffs = kLpcCeps;
  static const uint16_t kInputDim = 2 * kLpcCeps;  // mean + std of each coefficient
  static const uint32_t kBlobCapacity = mlp_blob_size_for(MaxClasses, kInputDim, Hidden);
  static const uint32_t kRecordCapacity = kBlobCapacity + kSlotOverheadBytes;

  AudioEngine() { init_views(); }

  // class_names: the initial classes (n <= MaxClasses); seed: weight init, reservoir and shuffle.
  Status begin(const char* const* class_names, uint16_t n, Storage* storage, uint32_t seed = 1) {
    if (n > MaxClasses) return kErrTooManyClasses;
    names_in_ = class_names;
    n_in_ = n;
    storage_ = storage;
    seed_ = seed;
    spec_ = ModelSpec();
    spec_.input_len = MaxFrames;
    spec_.input_channels = kCoeffs;
    spec_.feature_dim = kInputDim;
    spec_.num_classes = n;
    spec_.class_names = class_names;
    begun_ = true;
    reset();
    return kOk;
  }
  void set_clock(ClockFn micros) {
    clock_ = micros;
    lpc_.set_clock(micros);
  }
  void set_storage(Storage* s) { storage_ = s; }

  // ---- EngineIface
  const ModelSpec* model() const override { return begun_ ? &spec_ : nullptr; }
  uint16_t num_classes() const override { return m_.num_classes; }
  uint16_t max_classes() const override { return MaxClasses; }
  uint16_t feature_dim() const override { return kInputDim; }
  const char* class_name(uint16_t c) const override { return c < m_.num_classes ? names_[c] : ""; }
  uint32_t replay_capacity() const override { return Capacity; }
  uint32_t num_samples() const override { return store_.count; }
  Stats stats() const override {
    Stats s = stats_;
    s.engine_bytes = sizeof(*this);
    s.arena_bytes = 0;
    s.net_bytes = sizeof(W1_) + sizeof(b1_) + sizeof(W2_) + sizeof(b2_) + sizeof(vW1_) + sizeof(vb1_) + sizeof(vW2_) +
                  sizeof(vb2_) + sizeof(gW1_) + sizeof(gb1_) + sizeof(gW2_) + sizeof(gb2_) + sizeof(z_) + sizeof(h_) +
                  sizeof(dh_) + sizeof(probs_);
    s.head_bytes = s.net_bytes;
    s.norm_bytes = sizeof(mean_) + sizeof(m2_) + sizeof(inv_std_);
    s.lpc_bytes = sizeof(lpc_);
    s.store_bytes = sizeof(feats_) + sizeof(labels_) + sizeof(sessions_) + sizeof(order_);
    s.num_samples = store_.count;
    s.samples_seen = store_.seen;
    s.last_lpc_us = lpc_.last_frame_us();
    return s;
  }
  int add_class(const char* name) override { return mlp_add_class(m_, name); }
  Status remove_last_class() override { return mlp_remove_last_class(m_, store_); }
  void seed_shuffle(uint32_t seed) override { store_.rng_shuffle = rng_seed_shuffle(seed); }
  // window: frames_ rows of kCoeffs cepstra -> summary -> store (+ standardizer update)
  Status add_window(const float* window, uint16_t label) override {
    float x[kInputDim];
    Status s = summarize(window, x);
    if (s != kOk) return s;
    return add_sample(x, label);
  }
  // One summary vector (kInputDim floats): stored, and the standardizer learns it.
  Status add_sample(const float* x, uint16_t label) {
    if (label >= m_.num_classes) return kErrBadLabel;
    HeadView labels_only = HeadView();
    labels_only.num_classes = m_.num_classes;
    Status s = store_add(store_, labels_only, x, label);
    if (s == kOk) mlp_update_norm(m_, x);
    return s;
  }
  Status train(const TrainConfig& cfg, EpochCallback cb, void* user) override {
    const uint32_t t0 = clock_ ? clock_() : 0;
    uint32_t n = 0;
    Status s = mlp_blob_encode(m_, record_ + kSlotHeaderBytes, kBlobCapacity, &n);
    if (s != kOk) return s;
    s = mlp_train(m_, store_, cfg, cb, user, clock_, &stats_.last_step_us);
    stats_.plan = cfg.plan;
    if (s == kErrDiverged && mlp_blob_decode(m_, record_ + kSlotHeaderBytes, n) != kOk) s = kErrBadModel;
    if (clock_) stats_.last_train_us = clock_() - t0;
    return s;
  }
  Status predict(const float* window, Prediction* out) override {
    float x[kInputDim];
    Status s = summarize(window, x);
    if (s != kOk) return s;
    const uint32_t t0 = clock_ ? clock_() : 0;
    mlp_freeze_norm(m_);
    s = mlp_predict(m_, x, out);
    if (clock_) stats_.last_head_us = clock_() - t0;
    return s;
  }
  Status evaluate(EvalResult* out, bool use_replay) override {
    return mlp_evaluate(m_, store_, use_replay, out, confusion_);
  }
  const uint8_t* blob(uint32_t* size, Status* status) override {
    *status = mlp_blob_encode(m_, out_, sizeof(out_), size);
    return out_;
  }
  uint8_t* staging(uint32_t* capacity) override {
    *capacity = sizeof(stage_);
    return stage_;
  }
  Status deserialize(const uint8_t* data, uint32_t len) override {
    // classes with stored samples must survive a load with fewer classes
    if (len >= 10 && (uint32_t)(data[8] | (data[9] << 8)) < max_label_plus_one()) return kErrBlobShape;
    return mlp_blob_decode(m_, data, len);
  }
  Status save() override {
    if (!storage_) return kErrStorageIo;
    return storage_save_blob(*storage_, record_, kBlobCapacity, [this](uint8_t* out, uint32_t cap, uint32_t* n) {
      return mlp_blob_encode(m_, out, cap, n);
    });
  }
  Status load() override {
    if (!storage_) return kErrStorageEmpty;
    return storage_load_blob(*storage_, record_, kRecordCapacity,
                             [this](const uint8_t* data, uint32_t n) { return deserialize(data, n); });
  }
  // Initial network (the same weights every time for a seed), empty store and standardizer.
  void reset() override {
    init_views();
    mlp_init(m_, names_in_, n_in_, seed_);
    store_clear(store_, seed_);
    stats_ = Stats();
    frames_ = 0;
  }
  // Empties the store; the standardizer is part of the model (saved with it) and stays.
  void clear_samples() override { store_clear(store_, seed_); }
  void new_session() override { store_.session++; }
  const float* sample_features(uint32_t i) const override {
    return i < store_.count ? feats_ + i * kInputDim : nullptr;
  }
  int sample_label(uint32_t i) const override { return i < store_.count ? labels_[i] : -1; }
  uint16_t sample_session(uint32_t i) const override { return i < store_.count ? sessions_[i] : 0; }
  float* window_buffer(size_t* n) override {
    *n = (size_t)MaxFrames * kCoeffs;
    return window_;
  }
  uint16_t hidden_units() const override { return Hidden; }
  void set_window_frames(uint16_t n) override { frames_ = n; }
  LpcFrontEnd* lpc() override { return &lpc_; }

  // ---- accessors for tests and the host
  MlpView& net() { return m_; }
  StoreView& store() { return store_; }
  uint16_t window_frames() const { return frames_ ? frames_ : MaxFrames; }

 private:
  Status summarize(const float* window, float* x) const {
    if (!window) return kErrBadArgument;
    const uint16_t n = frames_ ? frames_ : MaxFrames;
    if (n > MaxFrames) return kErrBadArgument;
    if (!all_finite(window, (uint32_t)n * kCoeffs)) return kErrNonFinite;
    summarize_frames(window, n, kCoeffs, x);
    return kOk;
  }
  uint32_t max_label_plus_one() const {
    uint32_t m = 0;
    for (uint32_t i = 0; i < store_.count; ++i)
      if (labels_[i] + 1u > m) m = labels_[i] + 1u;
    return m;
  }
  void init_views() {
    m_.input_dim = kInputDim;
    m_.hidden = Hidden;
    m_.max_classes = MaxClasses;
    m_.W1 = W1_;
    m_.b1 = b1_;
    m_.W2 = W2_;
    m_.b2 = b2_;
    m_.vW1 = vW1_;
    m_.vb1 = vb1_;
    m_.vW2 = vW2_;
    m_.vb2 = vb2_;
    m_.gW1 = gW1_;
    m_.gb1 = gb1_;
    m_.gW2 = gW2_;
    m_.gb2 = gb2_;
    m_.z = z_;
    m_.h = h_;
    m_.dh = dh_;
    m_.probs = probs_;
    m_.names = names_;
    m_.norm_mean = mean_;
    m_.norm_m2 = m2_;
    m_.inv_std = inv_std_;
    store_.feature_dim = kInputDim;
    store_.capacity = Capacity;
    store_.features = feats_;
    store_.labels = labels_;
    store_.sessions = sessions_;
    store_.order = order_;
  }

  bool begun_ = false;
  const char* const* names_in_ = nullptr;
  uint16_t n_in_ = 0;
  uint16_t frames_ = 0;
  uint32_t seed_ = 1;
  Storage* storage_ = nullptr;
  ClockFn clock_ = nullptr;
  ModelSpec spec_ = ModelSpec();
  Stats stats_ = Stats();
  MlpView m_ = MlpView();
  StoreView store_ = StoreView();
  LpcFrontEnd lpc_;

  float W1_[kInputDim * Hidden];
  float b1_[Hidden];
  float W2_[Hidden * MaxClasses];
  float b2_[MaxClasses];
  float vW1_[kInputDim * Hidden];
  float vb1_[Hidden];
  float vW2_[Hidden * MaxClasses];
  float vb2_[MaxClasses];
  float gW1_[kInputDim * Hidden];
  float gb1_[Hidden];
  float gW2_[Hidden * MaxClasses];
  float gb2_[MaxClasses];
  float z_[kInputDim];
  float h_[Hidden];
  float dh_[Hidden];
  float probs_[MaxClasses];
  char names_[MaxClasses][kClassNameBytes];
  float mean_[kInputDim];
  float m2_[kInputDim];
  float inv_std_[kInputDim];
  float window_[(uint32_t)MaxFrames * kLpcCeps];
  float feats_[(uint32_t)Capacity * kInputDim];
  uint16_t labels_[Capacity];
  uint16_t sessions_[Capacity];
  uint16_t order_[Capacity];
  uint16_t confusion_[MaxClasses * MaxClasses];
  uint8_t out_[kBlobCapacity];
  uint8_t stage_[kBlobCapacity];
  uint8_t record_[kRecordCapacity];
};

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_AUDIO_ENGINE_H
