// odl_protocol.h - the command side of the serial protocol of the ODL sketches (see
// arduino_sketches/PROTOCOL.md): the dispatcher that drives an odl::Engine through EngineIface,
// the Sensor it records from, and the replies / progress events. Framing (frame assembly,
// parsing, writing) is odl_frame.h, as odlkit.board.protocol (frames) is apart from
// odlkit.board.client (commands) on the host.
//
//   static odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 200> engine;
//   static odl::EngineAdapter<decltype(engine), ODL_INPUT_LEN * ODL_INPUT_CHANNELS> adapter(engine, &storage);
//   static odl::Protocol proto(adapter, sensor, io, "0.1.0");
//   ... proto.boot(); then in loop(): proto.poll();
//
// No heap: every buffer is a member with a compile-time size. Portable C++14,
// no RTTI, no exceptions. The virtual board (arduino_sketches/virtual_board)
// runs exactly this code over stdin/stdout.
#ifndef ODL_PROTOCOL_H
#define ODL_PROTOCOL_H

#include "odl_numerics.h"
#include <stddef.h>
#include <stdint.h>

#include "odl_engine.h"
#include "odl_frame.h"
#include "odl_lpc.h"
#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

// ------------------------------------------------------------- sensor ---

// Where windows come from: the IMU on a real board, recorded data on the virtual board.
class Sensor {
 public:
  // "rev1", "rev2", "virtual", "none": reported as board= in HELLO / INFO.
  virtual const char* board_name() const = 0;
  // Fills one window (n floats: ODL_INPUT_LEN x ODL_INPUT_CHANNELS, time-major,
  // accel in g, gyro in deg/s). class_hint: the class the user was asked to
  // perform (the virtual board replays a recording of that class; a real sensor
  // ignores it), may be nullptr. for_predict selects the held-out recordings on
  // the virtual board. *truth: the true class name when known (virtual board),
  // else nullptr. Returns nullptr on success or an error message.
  virtual const char* read_window(const char* class_hint, bool for_predict, float* out, size_t n,
                                  const char** truth) = 0;
  // Blocks until the next sample (sample_rate_hz), writes channels() floats.
  virtual bool read_sample(float* out) = 0;
  virtual uint16_t channels() const { return 6; }
  virtual uint16_t sample_rate_hz() const { return 25; }
  // Rows (frames) of the last window read that hold data, for variable-length windows (Lab 2's
  // utterances); 0: the whole window.
  virtual uint16_t window_frames() const { return 0; }

 protected:
  ~Sensor() {}
};

// ----------------------------------------------------- engine adapter ---

// What the dispatcher needs from an engine; EngineAdapter<> implements it for
// any odl::Engine instantiation (so the dispatcher is compiled once, not per sketch).
class EngineIface {
 public:
  virtual const ModelSpec* model() const = 0;
  virtual uint16_t num_classes() const = 0;
  virtual uint16_t max_classes() const = 0;
  virtual uint16_t feature_dim() const = 0;
  virtual const char* class_name(uint16_t c) const = 0;
  virtual uint32_t replay_capacity() const = 0;
  virtual uint32_t num_samples() const = 0;
  virtual Stats stats() const = 0;
  virtual int add_class(const char* name) = 0;
  virtual Status remove_last_class() = 0;
  virtual void seed_shuffle(uint32_t seed) = 0;
  virtual Status add_window(const float* window, uint16_t label) = 0;
  virtual Status train(const TrainConfig& cfg, EpochCallback cb, void* user) = 0;
  virtual Status predict(const float* window, Prediction* out) = 0;
  virtual Status evaluate(EvalResult* out, bool use_replay) = 0;
  // Weights blob: serialized into an adapter-owned buffer.
  virtual const uint8_t* blob(uint32_t* size, Status* status) = 0;
  // Staging buffer for SETW (blob capacity of this engine).
  virtual uint8_t* staging(uint32_t* capacity) = 0;
  virtual Status deserialize(const uint8_t* data, uint32_t len) = 0;
  virtual Status save() = 0;
  virtual Status load() = 0;
  virtual void reset() = 0;
  virtual void clear_samples() = 0;
  virtual void new_session() = 0;
  virtual const float* sample_features(uint32_t i) const = 0;
  virtual int sample_label(uint32_t i) const = 0;
  virtual uint16_t sample_session(uint32_t i) const = 0;
  virtual float* window_buffer(size_t* n) = 0;
  // Lab 2 (audio sketches; the defaults are Lab 1's engine): hidden units of the network (0:
  // a head on a frozen backbone), how many frames the next add_window / predict window holds,
  // and the audio front end the LPC command drives (nullptr: none).
  virtual uint16_t hidden_units() const { return 0; }
  virtual void set_window_frames(uint16_t n) { (void)n; }
  virtual LpcFrontEnd* lpc() { return nullptr; }
  // Bytes of the plan buffer a training plan needs (TRAIN plan=...): kOk, kErrBadArgument (k out of
  // range), kErrPlanTooLarge (does not fit), kErrNoWindows. An engine without backbone plans
  // keeps this default.
  virtual Status plan_memory(uint8_t plan, uint8_t /*sparse_layers*/, uint32_t* bytes) const {
    *bytes = 0;
    return plan == kPlanHead ? kOk : kErrPlanTooLarge;
  }
  // TRAIN q=int8: the engine has the int8 path (Engine<..., Int8> after begin_int8).
  virtual bool int8_ready() const { return false; }

 protected:
  ~EngineIface() {}
};

// storage: where SAVE / LOAD go (RamStorage, FlashIAPStorage), or nullptr for none.
template <class EngineT, size_t WindowFloats>
class EngineAdapter : public EngineIface {
 public:
  EngineAdapter(EngineT& e, Storage* storage) : e_(e), storage_(storage) {}
  void set_storage(Storage* storage) { storage_ = storage; }
  const ModelSpec* model() const override { return e_.model(); }
  uint16_t num_classes() const override { return e_.num_classes(); }
  uint16_t max_classes() const override { return e_.max_classes(); }
  uint16_t feature_dim() const override { return e_.feature_dim(); }
  const char* class_name(uint16_t c) const override { return e_.class_name(c); }
  uint32_t replay_capacity() const override { return e_.replay_capacity(); }
  uint32_t num_samples() const override { return e_.num_samples(); }
  Stats stats() const override { return e_.stats(); }
  int add_class(const char* name) override { return e_.add_class(name); }
  Status remove_last_class() override { return e_.remove_last_class(); }
  void seed_shuffle(uint32_t seed) override { e_.seed_shuffle(seed); }
  Status add_window(const float* w, uint16_t label) override { return e_.add_window(w, label); }
  Status train(const TrainConfig& c, EpochCallback cb, void* u) override { return e_.train(c, cb, u); }
  Status predict(const float* w, Prediction* out) override { return e_.predict(w, out); }
  Status evaluate(EvalResult* out, bool r) override { return e_.evaluate(out, r); }
  const uint8_t* blob(uint32_t* size, Status* status) override {
    *status = e_.serialize(out_, sizeof(out_), size);
    return out_;
  }
  uint8_t* staging(uint32_t* capacity) override {
    *capacity = sizeof(stage_);
    return stage_;
  }
  Status deserialize(const uint8_t* d, uint32_t n) override { return e_.deserialize(d, n); }
  Status save() override { return storage_ ? e_.save(*storage_) : kErrStorageIo; }
  Status load() override { return storage_ ? e_.load(*storage_) : kErrStorageEmpty; }
  void reset() override { e_.reset(); }
  void clear_samples() override { e_.clear_samples(); }
  void new_session() override { e_.new_session(); }
  const float* sample_features(uint32_t i) const override { return e_.sample_features(i); }
  int sample_label(uint32_t i) const override { return e_.sample_label(i); }
  uint16_t sample_session(uint32_t i) const override { return e_.sample_session(i); }
  Status plan_memory(uint8_t plan, uint8_t k, uint32_t* bytes) const override {
    if (plan != kPlanHead && e_.window_capacity() == 0) return kErrNoWindows;
    Status s = e_.plan_memory(plan, k, bytes);
    if (s != kOk || plan == kPlanHead) return s;
    return *bytes > e_.stats().plan_capacity ? kErrPlanTooLarge : kOk;
  }
  bool int8_ready() const override { return e_.int8_ready(); }
  float* window_buffer(size_t* n) override {
    *n = WindowFloats;
    return window_;
  }

 private:
  EngineT& e_;
  Storage* storage_;
  uint8_t out_[EngineT::kBlobCapacity];
  uint8_t stage_[EngineT::kBlobCapacity];
  float window_[WindowFloats];
};

// ---------------------------------------------------------- dispatcher ---

struct BoardHooks {
  ClockFn micros = nullptr;         // for timing fields (optional)
  int32_t (*free_ram)() = nullptr;  // bytes of free RAM, optional (-1 reported)
};

class Protocol {
 public:
  Protocol(EngineIface& engine, Sensor& sensor, Io& io, const char* firmware_version, BoardHooks hooks = BoardHooks());
  // Sends the boot banner ($0 EV BOOT ...).
  void boot();
  // Call every loop with whether a host has the port open (USB CDC: DTR asserted). The banner
  // is sent again each time a host opens the port: one written at power-up, before any host
  // listened, is lost on USB. (HELLO and INFO answer the same fields at any time.)
  void host_connected(bool open);
  // Reads every byte available now and handles complete frames.
  void poll();
  // Handles one input byte.
  void feed(uint8_t c);

  uint32_t bytes_sent() const { return tx_; }
  uint32_t bytes_received() const { return rx_; }
  uint32_t errors() const { return errors_; }

  // Used by the training / audio callbacks; public for that reason only.
  void send_epoch_event(const EpochResult& r);
  void send_lpc_frame(uint32_t seq, const LpcFrame& fr);

 private:
  void handle(char* line, size_t len);
  void dispatch(const Frame& f);
  void send(FrameWriter& w);
  void error(uint32_t seq, int code, const char* msg, const char* detail = nullptr);
  void ok_begin(FrameWriter& w, uint32_t seq, const char* cmd);
  int resolve_class(const char* s) const;
  bool check_args(const Frame& f, uint8_t positional, const char* const* keys);

  void cmd_hello(const Frame& f, bool info);
  void cmd_record(const Frame& f);
  void cmd_addclass(const Frame& f);
  void cmd_train(const Frame& f);
  void cmd_predict(const Frame& f);
  void cmd_eval(const Frame& f);
  void cmd_getw(const Frame& f);
  void cmd_setw(const Frame& f);
  void cmd_getf(const Frame& f);
  void cmd_save(const Frame& f);
  void cmd_load(const Frame& f);
  void cmd_reset(const Frame& f);
  void cmd_stream(const Frame& f);
  void cmd_lpc(const Frame& f);

  EngineIface& e_;
  Sensor& sensor_;
  Io& io_;
  const char* fw_;
  BoardHooks hooks_;
  LineAssembler in_;
  FrameWriter out_;
  uint32_t last_seq_;
  uint32_t cur_seq_;
  uint32_t tx_, rx_, errors_;
  uint32_t setw_total_, setw_recv_;  // staged SETW transfer
  uint32_t lpc_total_, lpc_recv_;    // staged LPC audio transfer (bytes)
  uint32_t lpc_frames_sent_;
  bool host_open_ = false;
  EpochResult last_epoch_;
};

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_PROTOCOL_H
