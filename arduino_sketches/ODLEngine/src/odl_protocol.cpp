// odl_protocol.cpp - see odl_protocol.h and arduino_sketches/PROTOCOL.md.
#include "odl_protocol.h"
#include "odl_numerics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "odl_base64.h"
#include "odl_blob.h"

ODL_NUMERICS_BEGIN
namespace odl {

namespace {

bool streq(const char* a, const char* b) { return strcmp(a, b) == 0; }

bool epoch_trampoline(const EpochResult& r, void* user) {
  static_cast<Protocol*>(user)->send_epoch_event(r);
  return true;
}

}  // namespace

// ---------------------------------------------------------------- Protocol

Protocol::Protocol(EngineIface& engine, Sensor& sensor, Io& io, const char* firmware_version, BoardHooks hooks)
    : e_(engine),
      sensor_(sensor),
      io_(io),
      fw_(firmware_version),
      hooks_(hooks),
      last_seq_(0),
      cur_seq_(0),
      tx_(0),
      rx_(0),
      errors_(0),
      setw_total_(0),
      setw_recv_(0),
      lpc_total_(0),
      lpc_recv_(0),
      lpc_frames_sent_(0) {}

void Protocol::send(FrameWriter& w) {
  if (w.overflow()) {
    // Reply did not fit the line buffer: say so instead of sending a cut frame.
    uint32_t seq = cur_seq_;
    w.begin(seq, "ERR");
    w.token("9");
    w.text("reply longer than the 1024-byte line buffer");
  }
  size_t n = 0;
  const char* s = w.finish(&n);
  io_.write(s, n);
  io_.flush();
  tx_ += static_cast<uint32_t>(n);
}

void Protocol::error(uint32_t seq, int code, const char* msg, const char* detail) {
  ++errors_;
  char num[12];
  format_u32(static_cast<uint32_t>(code), num);
  out_.begin(seq, "ERR");
  out_.token(num);
  out_.text(msg);
  if (detail && *detail) out_.text(detail);
  send(out_);
}

void Protocol::ok_begin(FrameWriter& w, uint32_t seq, const char* cmd) {
  w.begin(seq, "OK");
  w.token(cmd);
}

void Protocol::boot() {
  out_.begin(0, "EV");
  out_.token("BOOT");
  out_.kv_u("proto", kProtocolVersion);
  out_.kv("fw", fw_);
  out_.kv("board", sensor_.board_name());
  send(out_);
}

void Protocol::host_connected(bool open) {
  if (open && !host_open_) boot();
  host_open_ = open;
}

void Protocol::poll() {
  for (int i = 0; i < 4096; ++i) {  // bounded: never starve the caller
    int c = io_.read();
    if (c < 0) return;
    feed(static_cast<uint8_t>(c));
  }
}

void Protocol::feed(uint8_t c) {
  ++rx_;
  LineAssembler::Result r = in_.feed(c);
  if (r == LineAssembler::kReject) {
    cur_seq_ = 0;
    error(0, in_.error(), in_.reason());
  } else if (r == LineAssembler::kFrame) {
    handle(in_.line(), in_.length());
    // handle() may have consumed input (STREAM abort); the assembler is ready either way
  }
}

void Protocol::handle(char* line, size_t len) {
  Frame f;
  bool trusted = false;
  int err = parse_frame(line, len, &f, &trusted);
  cur_seq_ = trusted ? f.seq : 0;
  if (err) {
    const char* msg = err == kPeBadCrc ? "CRC mismatch or no CRC field (byte lost or corrupted); resend with a new seq"
                      : err == kPeBadArg ? "too many arguments (at most 16)"
                                         : "malformed frame (seq, command or token syntax)";
    error(cur_seq_, err, msg);
    return;
  }
  if (streq(f.word, "OK") || streq(f.word, "ERR") || streq(f.word, "EV")) {
    return;  // a reply, not a request (e.g. our own output echoed back by a terminal): never answer it
  }
  if (f.seq == 0 || f.seq > kMaxSeq) {
    error(0, kPeBadSeq, "seq must be 1..999999999");
    return;
  }
  if (!streq(f.word, "HELLO") && f.seq <= last_seq_) {
    error(f.seq, kPeBadSeq, "duplicate or out-of-order seq; use a larger one or send HELLO");
    return;
  }
  last_seq_ = f.seq;
  dispatch(f);
}

void Protocol::dispatch(const Frame& f) {
  const char* w = f.word;
  if (streq(w, "HELLO"))
    cmd_hello(f, false);
  else if (streq(w, "INFO"))
    cmd_hello(f, true);
  else if (streq(w, "RECORD"))
    cmd_record(f);
  else if (streq(w, "ADDCLASS"))
    cmd_addclass(f);
  else if (streq(w, "TRAIN"))
    cmd_train(f);
  else if (streq(w, "PREDICT"))
    cmd_predict(f);
  else if (streq(w, "EVAL"))
    cmd_eval(f);
  else if (streq(w, "GETW"))
    cmd_getw(f);
  else if (streq(w, "SETW"))
    cmd_setw(f);
  else if (streq(w, "GETF"))
    cmd_getf(f);
  else if (streq(w, "SAVE"))
    cmd_save(f);
  else if (streq(w, "LOAD"))
    cmd_load(f);
  else if (streq(w, "RESET"))
    cmd_reset(f);
  else if (streq(w, "STREAM"))
    cmd_stream(f);
  else if (streq(w, "LPC"))
    cmd_lpc(f);
  else
    error(f.seq, kPeUnknownCmd, "unknown command", w);
}

// Every token must be a known key=value (keys: NULL-terminated list) or one of
// the first `positional` bare tokens; no key twice.
bool Protocol::check_args(const Frame& f, uint8_t positional, const char* const* keys) {
  uint8_t npos = 0;
  for (uint8_t i = 0; i < f.num_tokens; ++i) {
    const char* t = f.tokens[i];
    const char* eq = strchr(t, '=');
    if (!eq) {
      if (i != npos || ++npos > positional) {
        error(f.seq, kPeBadArg, "unexpected argument", t);
        return false;
      }
      continue;
    }
    size_t kl = static_cast<size_t>(eq - t);
    bool known = false;
    for (const char* const* k = keys; k && *k; ++k) {
      if (strlen(*k) == kl && strncmp(*k, t, kl) == 0) known = true;
    }
    if (!known || eq[1] == 0) {
      error(f.seq, kPeBadArg, known ? "empty value for" : "unknown argument", t);
      return false;
    }
    for (uint8_t j = 0; j < i; ++j) {
      if (strncmp(f.tokens[j], t, kl + 1) == 0) {
        error(f.seq, kPeBadArg, "argument given twice", t);
        return false;
      }
    }
  }
  return true;
}

int Protocol::resolve_class(const char* s) const {
  uint32_t idx = 0;
  if (parse_u32(s, &idx)) return idx < e_.num_classes() ? static_cast<int>(idx) : -1;
  for (uint16_t c = 0; c < e_.num_classes(); ++c) {
    if (streq(e_.class_name(c), s)) return c;
  }
  return -1;
}

static const char* const kNoKeys[] = {nullptr};

void Protocol::cmd_hello(const Frame& f, bool info) {
  if (!check_args(f, 0, kNoKeys)) return;
  const ModelSpec* m = e_.model();
  if (!m) {
    error(f.seq, kPeEngine, "engine not started (begin() failed: model header does not fit the engine)");
    return;
  }
  ok_begin(out_, f.seq, info ? "INFO" : "HELLO");
  out_.kv_u("proto", kProtocolVersion);
  out_.kv("fw", fw_);
  out_.kv("board", sensor_.board_name());
  out_.kv_u("dim", e_.feature_dim());
  out_.kv_u("classes", e_.num_classes());
  out_.kv_u("max", e_.max_classes());
  out_.kv_u("win", m->input_len);
  out_.kv_u("ch", m->input_channels);
  out_.kv_u("rate", sensor_.sample_rate_hz());
  if (e_.hidden_units() > 0) out_.kv_u("hidden", e_.hidden_units());  // Lab 2: the network's width
  if (info) {
    Stats s = e_.stats();
    out_.kv_u("cap", e_.replay_capacity());
    out_.kv_u("stored", s.num_samples);
    out_.kv_u("seen", s.samples_seen);
    out_.kv_u("engine_ram", s.engine_bytes);
    out_.kv_u("arena_ram", s.arena_bytes);
    out_.kv_u("head_ram", s.head_bytes);
    out_.kv_u("store_ram", s.store_bytes);
    out_.kv_i("free", hooks_.free_ram ? static_cast<long>(hooks_.free_ram()) : -1L);
    out_.kv_u("fwd_us", s.last_forward_us);
    out_.kv_u("head_us", s.last_head_us);
    out_.kv_u("train_us", s.last_train_us);
    static const char* const kPlanNames[] = {"head", "bias", "sparse", "all"};
    out_.kv("plan", s.plan <= kPlanAll ? kPlanNames[s.plan] : "?");
    out_.kv_u("k", s.sparse_layers);
    out_.kv_u("plan_ram", s.plan_bytes);
    out_.kv_u("plan_cap", s.plan_capacity);
    out_.kv_u("window_ram", s.window_bytes);
    out_.kv_u("win_cap", s.window_capacity);
    out_.kv_u("steps", s.last_steps);
    out_.kv_u("step_us", s.last_step_us);
    out_.kv("q", s.quant == kQuantInt8 ? "int8" : "float");  // what PREDICT / EVAL / GETW use now
    out_.kv_u("qas", s.qas ? 1u : 0u);
    out_.kv_u("int8_ram", s.int8_bytes);  // 0: a firmware without the int8 path
    if (e_.hidden_units() > 0) {
      out_.kv_u("net_ram", s.net_bytes);
      out_.kv_u("norm_ram", s.norm_bytes);
      out_.kv_u("lpc_ram", s.lpc_bytes);
      out_.kv_u("lpc_us", s.last_lpc_us);
    }
    out_.kv_u("tx", tx_);
    out_.kv_u("rx", rx_);
    out_.kv_u("errors", errors_);
    // names=a,b,c (names sanitized to token characters by kv(); ',' separates)
    char names[kMaxLine / 2];
    size_t n = 0;
    for (uint16_t c = 0; c < e_.num_classes(); ++c) {
      const char* nm = e_.class_name(c);
      size_t l = strlen(nm);
      if (n + l + 2 >= sizeof(names)) break;
      if (c) names[n++] = ',';
      for (size_t i = 0; i < l; ++i) names[n++] = nm[i] == ',' ? '_' : nm[i];
    }
    names[n] = 0;
    out_.kv("names", names);
  }
  send(out_);
}

void Protocol::cmd_record(const Frame& f) {
  static const char* const keys[] = {"n", "add", nullptr};
  if (!check_args(f, 1, keys)) return;
  if (f.num_tokens < 1 || strchr(f.tokens[0], '=')) {
    error(f.seq, kPeBadArg, "RECORD needs a class: RECORD <class> [n=1] [add=0|1]");
    return;
  }
  const char* add = frame_arg(f, "add");
  if (add && !streq(add, "0") && !streq(add, "1")) {
    error(f.seq, kPeBadArg, "add must be 0 or 1");
    return;
  }
  int label = resolve_class(f.tokens[0]);
  // add=1 and an unknown class: the class is created only once its first window is stored,
  // so a RECORD that fails leaves no empty class behind.
  const bool create = label < 0 && add && add[0] == '1';
  if (label < 0 && !create) {
    error(f.seq, kPeState, "unknown class; ADDCLASS it first (or RECORD ... add=1):", f.tokens[0]);
    return;
  }
  uint32_t dummy = 0;
  if (create && (!valid_class_name(f.tokens[0]) || parse_u32(f.tokens[0], &dummy))) {
    error(f.seq, kPeBadArg, "a new class needs a name of 1..15 characters [A-Za-z0-9_.-], not a number");
    return;
  }
  if (create && e_.num_classes() >= e_.max_classes()) {
    error(f.seq, kPeState, "add_class failed:", status_str(kErrTooManyClasses));
    return;
  }
  uint32_t n = 1;
  const char* ns = frame_arg(f, "n");
  if (ns && (!parse_u32(ns, &n) || n < 1 || n > 1000)) {
    error(f.seq, kPeBadArg, "n must be 1..1000");
    return;
  }
  const ModelSpec* m = e_.model();
  size_t cap = 0;
  float* win = e_.window_buffer(&cap);
  size_t need = m ? static_cast<size_t>(m->input_len) * m->input_channels : 0;
  if (!m || need == 0 || need > cap) {
    error(f.seq, kPeEngine, "window buffer does not match the model");
    return;
  }
  const char* name = create ? f.tokens[0] : e_.class_name(static_cast<uint16_t>(label));
  uint32_t fwd = 0, done = 0;
  int pending = -1;
  for (uint32_t k = 1; k <= n; ++k) {
    // Any input byte aborts after the current window (a host that gave up, or a new command):
    // the board is never deaf for the up to 1000 x 2 s a RECORD may last.
    if (k > 1) {
      int c = io_.read();
      if (c >= 0) {
        pending = c;
        break;
      }
    }
    out_.begin(f.seq, "EV");
    out_.token("RECORD");
    out_.kv_u("i", k);
    out_.kv_u("n", n);
    out_.kv("class", name);
    send(out_);
    const char* truth = nullptr;
    const char* err = sensor_.read_window(name, false, win, need, &truth);
    if (err) {
      error(f.seq, kPeSensor, err);
      return;
    }
    e_.set_window_frames(sensor_.window_frames());
    if (label < 0) {
      if (!all_finite(win, static_cast<uint32_t>(need))) {
        error(f.seq, kPeSensor, "window has non-finite values; class not added");
        return;
      }
      label = e_.add_class(name);
      if (label < 0) {
        error(f.seq, kPeEngine, "add_class failed:", status_str(label));
        return;
      }
    }
    Status s = e_.add_window(win, static_cast<uint16_t>(label));
    if (s != kOk) {
      if (create && done == 0) e_.remove_last_class();  // created here, still empty: undo
      error(f.seq, kPeEngine, "add_window failed:", status_str(s));
      return;
    }
    ++done;
    fwd = e_.stats().last_forward_us;
  }
  ok_begin(out_, f.seq, "RECORD");
  out_.kv_u("class", static_cast<uint32_t>(label));
  out_.kv_u("n", done);
  out_.kv_u("stored", e_.num_samples());
  out_.kv_u("fwd_us", fwd);
  out_.kv_u("aborted", pending >= 0 ? 1u : 0u);
  send(out_);
  if (pending >= 0) feed(static_cast<uint8_t>(pending));  // the byte that stopped us may start a frame
}

void Protocol::cmd_addclass(const Frame& f) {
  if (!check_args(f, 1, kNoKeys)) return;
  if (f.num_tokens != 1 || !valid_class_name(f.tokens[0])) {
    error(f.seq, kPeBadArg, "ADDCLASS needs a name of 1..15 characters [A-Za-z0-9_.-]");
    return;
  }
  uint32_t dummy = 0;
  if (parse_u32(f.tokens[0], &dummy)) {
    error(f.seq, kPeBadArg, "a class name cannot be a number (numbers mean class indices)");
    return;
  }
  if (resolve_class(f.tokens[0]) >= 0) {
    error(f.seq, kPeState, "class already exists:", f.tokens[0]);
    return;
  }
  int idx = e_.add_class(f.tokens[0]);
  if (idx < 0) {
    error(f.seq, idx == kErrTooManyClasses ? kPeState : kPeEngine, "add_class failed:", status_str(idx));
    return;
  }
  ok_begin(out_, f.seq, "ADDCLASS");
  out_.kv_u("index", static_cast<uint32_t>(idx));
  out_.kv_u("classes", e_.num_classes());
  send(out_);
}

void Protocol::send_epoch_event(const EpochResult& r) {
  last_epoch_ = r;
  out_.begin(cur_seq_, "EV");
  out_.token("TRAIN");
  out_.kv_u("epoch", r.epoch);
  out_.kv_f("loss", r.loss);
  out_.kv_f("acc", r.accuracy);
  send(out_);
}

void Protocol::cmd_train(const Frame& f) {
  static const char* const keys[] = {"epochs", "lr",   "mom", "wd", "batch", "mode", "replay",
                                     "seed",   "plan", "k",   "q",  "qas",   nullptr};
  if (!check_args(f, 0, keys)) return;
  TrainConfig cfg;
  uint32_t u = 0;
  float x = 0;
  const char* v;
  if ((v = frame_arg(f, "epochs"))) {
    if (!parse_u32(v, &u) || u < 1 || u > 1000) return error(f.seq, kPeBadArg, "epochs must be 1..1000");
    cfg.epochs = static_cast<uint16_t>(u);
  }
  if ((v = frame_arg(f, "batch"))) {
    if (!parse_u32(v, &u) || u < 1 || u > 1024) return error(f.seq, kPeBadArg, "batch must be 1..1024");
    cfg.batch_size = static_cast<uint16_t>(u);
  }
  if ((v = frame_arg(f, "lr"))) {
    if (!parse_float(v, &x) || !(x > 0.0f) || x > 10.0f) return error(f.seq, kPeBadArg, "lr must be in (0, 10]");
    cfg.lr = x;
  }
  if ((v = frame_arg(f, "mom"))) {
    if (!parse_float(v, &x) || x < 0.0f || !(x < 1.0f)) return error(f.seq, kPeBadArg, "mom must be in [0, 1)");
    cfg.momentum = x;
  }
  if ((v = frame_arg(f, "wd"))) {
    if (!parse_float(v, &x) || x < 0.0f || x > 1.0f) return error(f.seq, kPeBadArg, "wd must be in [0, 1]");
    cfg.weight_decay = x;
  }
  if ((v = frame_arg(f, "mode"))) {
    if (streq(v, "full"))
      cfg.mode = kTrainFull;
    else if (streq(v, "bias"))
      cfg.mode = kTrainBiasOnly;
    else
      return error(f.seq, kPeBadArg, "mode must be full or bias");
  }
  if ((v = frame_arg(f, "replay"))) {
    if (!streq(v, "0") && !streq(v, "1")) return error(f.seq, kPeBadArg, "replay must be 0 or 1");
    cfg.use_replay = v[0] == '1';
  }
  const bool network = e_.hidden_units() > 0;  // Lab 2: a two-layer network, no backbone
  if (network) cfg.plan = kPlanAll;            // its default: train both layers
  if ((v = frame_arg(f, "plan"))) {
    if (streq(v, "head"))
      cfg.plan = kPlanHead;
    else if (streq(v, "bias"))
      cfg.plan = kPlanBias;
    else if (streq(v, "sparse"))
      cfg.plan = kPlanSparse;
    else if (streq(v, "all"))
      cfg.plan = kPlanAll;
    else
      return error(f.seq, kPeBadArg, "plan must be head, bias, sparse or all");
  }
  if (network && cfg.plan != kPlanHead && cfg.plan != kPlanAll)
    return error(f.seq, kPeBadArg,
                 "this sketch trains a two-layer network from scratch (no backbone):", "plan=all or plan=head");
  if (!network && cfg.plan == kPlanAll)
    return error(f.seq, kPeBadArg, "plan=all needs a sketch with a hidden layer (lab2_microphone); this sketch",
                 "trains a head on a pretrained backbone: plan=head, bias or sparse");
  if (network && cfg.mode != kTrainFull)
    return error(f.seq, kPeBadArg, "mode=bias is Lab 1's bias-only head training; the two-layer network takes",
                 "mode=full with plan=all or plan=head");
  if ((v = frame_arg(f, "k"))) {
    if (cfg.plan != kPlanSparse) return error(f.seq, kPeBadArg, "k= is only for plan=sparse");
    if (!parse_u32(v, &u) || u < 1 || u > 255) return error(f.seq, kPeBadArg, "k must be 1..255 layers");
    cfg.sparse_layers = static_cast<uint8_t>(u);
  } else if (cfg.plan == kPlanSparse) {
    return error(f.seq, kPeBadArg, "plan=sparse needs k=<layers whose kernel is updated>");
  }
  if ((v = frame_arg(f, "q"))) {
    if (streq(v, "float"))
      cfg.quant = kQuantFloat;
    else if (streq(v, "int8"))
      cfg.quant = kQuantInt8;
    else
      return error(f.seq, kPeBadArg, "q must be float or int8");
  }
  if ((v = frame_arg(f, "qas"))) {
    if (cfg.quant != kQuantInt8) return error(f.seq, kPeBadArg, "qas= is only for q=int8");
    if (!streq(v, "0") && !streq(v, "1")) return error(f.seq, kPeBadArg, "qas must be 0 or 1");
    cfg.qas = v[0] == '1';
  }
  if (cfg.quant == kQuantInt8) {
    if (!e_.int8_ready())
      return error(f.seq, kPeBadArg, "this firmware has no int8 path (q=float only):", status_str(kErrNoInt8));
    if (cfg.plan != kPlanHead) return error(f.seq, kPeBadArg, "q=int8 trains the int8 head only: plan=head");
    if (cfg.mode != kTrainFull) return error(f.seq, kPeBadArg, "q=int8 takes mode=full (the int8 kernel and bias)");
  }
  if (cfg.plan == kPlanBias || cfg.plan == kPlanSparse) {
    uint32_t need = 0;
    Status ps = e_.plan_memory(cfg.plan, cfg.sparse_layers, &need);
    if (ps == kErrBadArgument) return error(f.seq, kPeBadArg, "k is more than the backbone's layers with weights");
    if (ps == kErrNoWindows) return error(f.seq, kPeBadArg, "this firmware keeps no windows: only plan=head");
    if (ps != kOk)
      return error(f.seq, kPeBadArg,
                   "plan does not fit this firmware's plan buffer (plan_cap in INFO):", status_str(kErrPlanTooLarge));
  }
  bool reseed = false;
  uint32_t seed = 0;
  if ((v = frame_arg(f, "seed"))) {
    if (!parse_u32(v, &seed)) return error(f.seq, kPeBadArg, "seed must be an integer 0..4294967295");
    reseed = true;
  }
  if (e_.num_samples() == 0) return error(f.seq, kPeState, "no samples stored; RECORD some first");
  if (e_.num_classes() < 2) return error(f.seq, kPeState, "need at least 2 classes to train; ADDCLASS first");
  if (reseed) e_.seed_shuffle(seed);
  last_epoch_ = EpochResult();
  Status s = e_.train(cfg, epoch_trampoline, this);
  if (s != kOk) {
    return error(f.seq, s == kErrNoSamples ? kPeState : kPeEngine, "train failed:", status_str(s));
  }
  ok_begin(out_, f.seq, "TRAIN");
  out_.kv_u("epochs", last_epoch_.epoch);
  out_.kv_f("loss", last_epoch_.loss);
  out_.kv_f("acc", last_epoch_.accuracy);
  out_.kv_u("train_us", e_.stats().last_train_us);
  send(out_);
}

void Protocol::cmd_predict(const Frame& f) {
  if (!check_args(f, 1, kNoKeys)) return;
  const char* hint = nullptr;
  if (f.num_tokens == 1) {
    if (!valid_class_name(f.tokens[0])) return error(f.seq, kPeBadArg, "bad class name", f.tokens[0]);
    hint = f.tokens[0];
    uint32_t idx = 0;
    if (parse_u32(hint, &idx)) {
      if (idx >= e_.num_classes()) return error(f.seq, kPeBadArg, "class index out of range", hint);
      hint = e_.class_name(static_cast<uint16_t>(idx));
    }
  }
  if (e_.num_classes() == 0) return error(f.seq, kPeState, "the head has no classes; ADDCLASS first");
  const ModelSpec* m = e_.model();
  size_t cap = 0;
  float* win = e_.window_buffer(&cap);
  size_t need = m ? static_cast<size_t>(m->input_len) * m->input_channels : 0;
  if (!m || need == 0 || need > cap) return error(f.seq, kPeEngine, "window buffer does not match the model");
  const char* truth = nullptr;
  const char* err = sensor_.read_window(hint, true, win, need, &truth);
  if (err) return error(f.seq, kPeSensor, err);
  e_.set_window_frames(sensor_.window_frames());
  Prediction p;
  Status s = e_.predict(win, &p);
  if (s != kOk) return error(f.seq, kPeEngine, "predict failed:", status_str(s));
  Stats st = e_.stats();
  ok_begin(out_, f.seq, "PREDICT");
  out_.kv_i("label", p.label);
  out_.kv("name", p.label >= 0 ? e_.class_name(static_cast<uint16_t>(p.label)) : "");
  out_.kv_f("conf", p.confidence);
  out_.kv_floats("probs", p.probs, p.num_classes);
  out_.kv_u("fwd_us", st.last_forward_us);
  out_.kv_u("head_us", st.last_head_us);
  if (truth) out_.kv("truth", truth);
  send(out_);
}

void Protocol::cmd_eval(const Frame& f) {
  static const char* const keys[] = {"replay", nullptr};
  if (!check_args(f, 0, keys)) return;
  bool replay = true;
  const char* v = frame_arg(f, "replay");
  if (v) {
    if (!streq(v, "0") && !streq(v, "1")) return error(f.seq, kPeBadArg, "replay must be 0 or 1");
    replay = v[0] == '1';
  }
  EvalResult r;
  Status s = e_.evaluate(&r, replay);
  if (s != kOk) {
    return error(f.seq, s == kErrNoSamples ? kPeState : kPeEngine, "evaluate failed:", status_str(s));
  }
  // One event per true class (a row of the confusion matrix), so the matrix never has to fit
  // one 1024-byte line: a row of C classes needs at most 6 * C + 40 bytes.
  for (uint16_t row = 0; row < r.num_classes; ++row) {
    out_.begin(f.seq, "EV");
    out_.token("EVAL");
    out_.kv_u("row", row);
    out_.kv_u16s("cm", r.confusion + static_cast<uint32_t>(row) * r.stride, r.num_classes, r.stride, 1);
    send(out_);
  }
  ok_begin(out_, f.seq, "EVAL");
  out_.kv_u("n", r.n);
  out_.kv_u("correct", r.correct);
  out_.kv_f("acc", r.accuracy);
  out_.kv_f("loss", r.loss);
  out_.kv_u("classes", r.num_classes);
  send(out_);
}

void Protocol::cmd_getw(const Frame& f) {
  static const char* const keys[] = {"off", nullptr};
  if (!check_args(f, 0, keys)) return;
  uint32_t off = 0;
  const char* v = frame_arg(f, "off");
  if (v && !parse_u32(v, &off)) return error(f.seq, kPeBadArg, "off must be a byte offset");
  uint32_t size = 0;
  Status s = kOk;
  const uint8_t* blob = e_.blob(&size, &s);
  if (s != kOk) return error(f.seq, kPeEngine, "serialize failed:", status_str(s));
  if (off >= size) return error(f.seq, kPeBadArg, "off beyond the end of the weights blob");
  uint32_t n = size - off;
  if (n > kChunkBytes) n = static_cast<uint32_t>(kChunkBytes);
  ok_begin(out_, f.seq, "GETW");
  out_.kv_u("total", size);
  out_.kv_u("off", off);
  out_.kv_u("len", n);
  out_.kv_b64("data", blob + off, n);
  send(out_);
}

void Protocol::cmd_setw(const Frame& f) {
  static const char* const keys[] = {"total", "off", "data", nullptr};
  if (!check_args(f, 0, keys)) return;
  uint32_t total = 0, off = 0, cap = 0;
  uint8_t* stage = e_.staging(&cap);
  const char* ts = frame_arg(f, "total");
  const char* os = frame_arg(f, "off");
  const char* ds = frame_arg(f, "data");
  if (!ts || !os || !ds) return error(f.seq, kPeBadArg, "SETW needs total=, off= and data=");
  if (!parse_u32(ts, &total) || total < kBlobHeaderBytes + 4 || total > cap) {
    setw_total_ = setw_recv_ = 0;
    return error(f.seq, kPeBadPayload, "total is not a possible blob size for this engine");
  }
  if (!parse_u32(os, &off)) return error(f.seq, kPeBadArg, "off must be a byte offset");
  if (off == 0) {
    setw_total_ = total;
    setw_recv_ = 0;
  } else if (setw_total_ == 0 || total != setw_total_ || off != setw_recv_) {
    setw_total_ = setw_recv_ = 0;
    return error(f.seq, kPeBadPayload, "chunk out of order; restart the transfer at off=0");
  }
  long n = base64_decode(ds, strlen(ds), stage + off, total - off);
  if (n <= 0 || n > static_cast<long>(kChunkBytes)) {
    setw_total_ = setw_recv_ = 0;
    return error(f.seq, kPeBadPayload, "data is not base64 of 1..512 bytes inside total; restart at off=0");
  }
  setw_recv_ += static_cast<uint32_t>(n);
  bool applied = false;
  if (setw_recv_ == setw_total_) {
    Status s = e_.deserialize(stage, setw_total_);
    setw_total_ = setw_recv_ = 0;
    if (s != kOk) return error(f.seq, kPeWeights, "weights rejected, unchanged:", status_str(s));
    applied = true;
  }
  ok_begin(out_, f.seq, "SETW");
  out_.kv_u("recv", applied ? total : setw_recv_);
  out_.kv_u("total", total);
  out_.kv_u("applied", applied ? 1u : 0u);
  send(out_);
}

void Protocol::cmd_getf(const Frame& f) {
  static const char* const keys[] = {"i", nullptr};
  if (!check_args(f, 0, keys)) return;
  uint32_t i = 0;
  const char* v = frame_arg(f, "i");
  if (v && !parse_u32(v, &i)) return error(f.seq, kPeBadArg, "i must be a sample index");
  uint32_t n = e_.num_samples();
  if (n == 0) return error(f.seq, kPeState, "no samples stored; RECORD some first");
  if (i >= n) return error(f.seq, kPeBadArg, "i beyond the stored samples");
  size_t bytes = static_cast<size_t>(e_.feature_dim()) * 4u;
  if (bytes > kChunkBytes) return error(f.seq, kPeEngine, "feature vector larger than one chunk");
  const float* feat = e_.sample_features(i);
  uint8_t raw[kChunkBytes];
  memcpy(raw, feat, bytes);  // little-endian float32 on every supported target
  ok_begin(out_, f.seq, "GETF");
  out_.kv_u("n", n);
  out_.kv_u("i", i);
  out_.kv_i("label", e_.sample_label(i));
  out_.kv_u("session", e_.sample_session(i));
  out_.kv_b64("data", raw, bytes);
  send(out_);
}

void Protocol::cmd_save(const Frame& f) {
  if (!check_args(f, 0, kNoKeys)) return;
  Status s = e_.save();
  if (s != kOk) return error(f.seq, kPeStorage, "save failed:", status_str(s));
  uint32_t size = 0;
  e_.blob(&size, &s);
  ok_begin(out_, f.seq, "SAVE");
  out_.kv_u("bytes", size);
  send(out_);
}

void Protocol::cmd_load(const Frame& f) {
  if (!check_args(f, 0, kNoKeys)) return;
  Status s = e_.load();
  if (s != kOk) {
    // a record this firmware cannot take (format, shape, a plan or int8 head it has no room for)
    bool blob = (s <= kErrBlobMagic && s >= kErrBlobShape) || s == kErrPlanTooLarge || s == kErrNoInt8;
    return error(f.seq, blob ? kPeWeights : kPeStorage, "load failed:", status_str(s));
  }
  ok_begin(out_, f.seq, "LOAD");
  out_.kv_u("classes", e_.num_classes());
  const Stats st = e_.stats();  // what the record restored besides the head (INFO has the same)
  static const char* const kPlanNames[] = {"head", "bias", "sparse", "all"};
  out_.kv("plan", st.plan <= kPlanAll ? kPlanNames[st.plan] : "?");
  out_.kv("q", st.quant == kQuantInt8 ? "int8" : "float");
  send(out_);
}

void Protocol::cmd_reset(const Frame& f) {
  static const char* const keys[] = {"what", nullptr};
  if (!check_args(f, 0, keys)) return;
  const char* what = frame_arg(f, "what");
  if (!what) what = "all";
  if (streq(what, "all")) {
    e_.reset();
    setw_total_ = setw_recv_ = 0;
  } else if (streq(what, "samples")) {
    e_.clear_samples();
  } else if (streq(what, "session")) {
    e_.new_session();
  } else {
    return error(f.seq, kPeBadArg, "what must be all, samples or session");
  }
  ok_begin(out_, f.seq, "RESET");
  out_.kv("what", what);
  send(out_);
}

void Protocol::cmd_stream(const Frame& f) {
  static const char* const keys[] = {"s", nullptr};
  if (!check_args(f, 0, keys)) return;
  uint32_t secs = 10;
  const char* v = frame_arg(f, "s");
  if (v && (!parse_u32(v, &secs) || secs < 1 || secs > 3600)) return error(f.seq, kPeBadArg, "s must be 1..3600");
  uint16_t ch = sensor_.channels();
  if (ch == 0 || ch > 16) return error(f.seq, kPeSensor, "sensor has no channels");
  uint32_t total = secs * sensor_.sample_rate_hz();
  uint32_t sent = 0;
  bool aborted = false;
  int pending = -1;
  float sample[16];
  char line[16 * 20 + 4];
  for (; sent < total; ++sent) {
    int c = io_.read();  // any input byte stops the stream
    if (c >= 0) {
      pending = c;
      aborted = true;
      break;
    }
    if (!sensor_.read_sample(sample)) {
      return error(f.seq, kPeSensor, "sensor stopped delivering samples");
    }
    size_t n = 0;
    for (uint16_t k = 0; k < ch; ++k) {
      if (k) line[n++] = ',';
      n += format_float(sample[k], line + n);
    }
    line[n++] = '\r';
    line[n++] = '\n';
    io_.write(line, n);
    tx_ += static_cast<uint32_t>(n);
  }
  io_.flush();
  ok_begin(out_, f.seq, "STREAM");
  out_.kv_u("n", sent);
  out_.kv_u("rate", sensor_.sample_rate_hz());
  out_.kv_u("aborted", aborted ? 1u : 0u);
  send(out_);
  if (pending >= 0) feed(static_cast<uint8_t>(pending));  // the byte that stopped us may start a frame
}

namespace {

struct LpcEmit {
  Protocol* proto;
  uint32_t seq;
};

}  // namespace

void Protocol::send_lpc_frame(uint32_t seq, const LpcFrame& fr) {
  out_.begin(seq, "EV");
  out_.token("LPC");
  out_.kv_u("i", fr.index);
  out_.kv_f("db", fr.energy_db);
  out_.kv_u("voiced", fr.voiced ? 1u : 0u);
  uint8_t raw[kLpcCeps * 4];
  memcpy(raw, fr.ceps, sizeof(raw));  // little-endian float32, exact (GETF's convention)
  out_.kv_b64("c", raw, sizeof(raw));
  send(out_);
  ++lpc_frames_sent_;
}

static void lpc_trampoline(const LpcFrame& fr, void* user) {
  LpcEmit* e = static_cast<LpcEmit*>(user);
  e->proto->send_lpc_frame(e->seq, fr);
}

// LPC off=<byte offset> data=<base64 of int16 little-endian PCM> [rate=16000|10000]: the board's
// own audio front end (resampler, framing, LPC cepstra) on audio sent by the host, one chunk of
// at most 512 bytes per frame; off=0 starts a new stream. Every frame a chunk completes is sent
// as an EV LPC event (c = the 12 cepstra as base64 float32) before the OK.
void Protocol::cmd_lpc(const Frame& f) {
  static const char* const keys[] = {"off", "data", "rate", nullptr};
  if (!check_args(f, 0, keys)) return;
  LpcFrontEnd* fe = e_.lpc();
  if (!fe) return error(f.seq, kPeState, "this sketch has no audio front end; LPC is Lab 2's (lab2_microphone)");
  const char* os = frame_arg(f, "off");
  const char* ds = frame_arg(f, "data");
  const char* rs = frame_arg(f, "rate");
  if (!os || !ds) return error(f.seq, kPeBadArg, "LPC needs off= and data= (base64 int16 little-endian samples)");
  uint32_t off = 0, rate = 16000;
  if (!parse_u32(os, &off)) return error(f.seq, kPeBadArg, "off must be a byte offset");
  if (rs && (!parse_u32(rs, &rate) || (rate != 16000 && rate != 10000)))
    return error(f.seq, kPeBadArg, "rate must be 16000 (the microphone) or 10000");
  if (rs && off != 0) return error(f.seq, kPeBadArg, "rate= only with off=0 (it starts a stream)");
  if (off != 0 && off != lpc_recv_) {
    lpc_recv_ = 0;
    return error(f.seq, kPeBadPayload, "audio chunk out of order; restart the stream at off=0");
  }
  uint8_t raw[kChunkBytes];
  long n = base64_decode(ds, strlen(ds), raw, sizeof(raw));
  if (n <= 0 || (n & 1)) {
    lpc_recv_ = 0;
    return error(f.seq, kPeBadPayload, "data is not base64 of 2..512 bytes of int16 samples; restart at off=0");
  }
  if (off == 0) {
    fe->begin(rate);
    lpc_recv_ = 0;
    lpc_frames_sent_ = 0;
  }
  fe->set_clock(hooks_.micros);
  LpcEmit emit = {this, f.seq};
  for (long i = 0; i + 1 < n; i += 2) {
    const int16_t s = (int16_t)(uint16_t)(raw[i] | (raw[i + 1] << 8));
    fe->push_int16(&s, 1, lpc_trampoline, &emit);
  }
  lpc_recv_ += (uint32_t)n;
  ok_begin(out_, f.seq, "LPC");
  out_.kv_u("samples", fe->samples_in());
  out_.kv_u("frames", fe->frames_out());
  out_.kv_u("rate", fe->rate_hz());
  out_.kv_u("lpc_us", fe->last_frame_us());
  send(out_);
}

}  // namespace odl
ODL_NUMERICS_END
