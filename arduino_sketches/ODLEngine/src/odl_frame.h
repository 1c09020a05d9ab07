// odl_frame.h - the framing of the serial protocol (arduino_sketches/PROTOCOL.md, section 1):
// constants, byte-wise frame assembly with resynchronization, CRC32-checked parsing, strict
// number parsing and formatting, and the writer of outgoing frames. The Python twin is
// src/odlkit/board/protocol.py (tests/test_protocol.py checks that the constants agree).
#ifndef ODL_FRAME_H
#define ODL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "odl_numerics.h"

ODL_NUMERICS_BEGIN
namespace odl {

static const uint32_t kProtocolVersion = 1;
static const size_t kMaxLine = 1024;    // bytes of one frame, '$' and '\n' included
static const size_t kMaxTokens = 16;    // tokens after the command word
static const size_t kChunkBytes = 512;  // GETW / SETW payload bytes per frame
static const uint32_t kMaxSeq = 999999999u;

enum ProtoError : int {
  kPeLineTooLong = 1,
  kPeBadCrc = 2,
  kPeMalformed = 3,
  kPeBadSeq = 4,
  kPeUnknownCmd = 5,
  kPeBadArg = 6,
  kPeBadPayload = 7,
  kPeState = 8,
  kPeEngine = 9,
  kPeWeights = 10,
  kPeStorage = 11,
  kPeSensor = 12
};

// ---------------------------------------------------------------- parsing ---

// A parsed frame; pointers point into the (modified in place) line buffer.
struct Frame {
  uint32_t seq;
  const char* word;                // command (requests) or OK / ERR / EV (replies)
  const char* tokens[kMaxTokens];  // the tokens after word
  uint8_t num_tokens;
};

// Parses one frame: line[0] == '$', len bytes, no '\n'. The buffer is modified
// (spaces become NUL). Returns 0 or a ProtoError; *seq_trusted says whether
// out->seq may be echoed in an error reply (only once the CRC has matched).
int parse_frame(char* line, size_t len, Frame* out, bool* seq_trusted);

// Value of the key=value token `key` among tokens[first..], or nullptr.
const char* frame_arg(const Frame& f, const char* key, uint8_t first = 0);

// Strict number parsers: the whole string must be consumed, no sign where
// unsigned, finite floats only. Return false on any problem.
bool parse_u32(const char* s, uint32_t* out);
bool parse_float(const char* s, float* out);

// Writes v with 6 significant digits ("%.6g"-like, without needing printf float
// support, which newlib-nano lacks). out needs 16 bytes. Returns the length.
size_t format_float(float v, char* out);
// Writes v in decimal (out needs 11 bytes, NUL terminated). Returns the length.
size_t format_u32(uint32_t v, char* out);

// A class name accepted by ADDCLASS: 1..15 of [A-Za-z0-9_.-].
bool valid_class_name(const char* s);

// ------------------------------------------------------ frame assembly ---

// Byte-wise state machine that cuts the input stream into frames.
class LineAssembler {
 public:
  enum Result { kNothing = 0, kFrame = 1, kReject = 2 };
  LineAssembler() { clear(); }
  // Feeds one byte. kFrame: a complete frame is in line()/length() (NUL
  // terminated, '\r' and '\n' stripped). kReject: a line was rejected at the
  // framing level, error()/reason() say why. A kReject may be produced by a '$'
  // that also opens a new frame (the previous frame was truncated).
  Result feed(uint8_t c);
  char* line() { return buf_; }
  size_t length() const { return len_; }
  int error() const { return error_; }
  const char* reason() const { return reason_; }
  void clear();

 private:
  enum State { kIdle, kInFrame, kDiscard };
  char buf_[kMaxLine + 1];
  size_t len_;
  uint8_t state_;
  bool junk_;      // idle line has non-blank bytes
  bool bad_byte_;  // non-printable byte inside the frame
  int error_;
  const char* reason_;
  int discard_error_;
  const char* discard_reason_;
};

// ------------------------------------------------------------- output ---

class Io {
 public:
  virtual int read() = 0;  // next byte or -1 if none available now
  virtual void write(const char* data, size_t n) = 0;
  virtual void flush() {}

 protected:
  ~Io() {}
};

// Builds one outgoing frame: begin(), add tokens, send().
class FrameWriter {
 public:
  FrameWriter() : len_(0), overflow_(false) { buf_[0] = 0; }
  void begin(uint32_t seq, const char* word);
  void token(const char* t);                    // raw token (caller guarantees syntax)
  void kv(const char* key, const char* value);  // value sanitized to token characters
  void kv_u(const char* key, uint32_t v);
  void kv_i(const char* key, long v);
  void kv_f(const char* key, float v);
  void kv_floats(const char* key, const float* v, size_t n);  // comma separated
  void kv_u16s(const char* key, const uint16_t* v, size_t n, size_t stride, size_t rows);
  void kv_b64(const char* key, const uint8_t* data, size_t n);
  void text(const char* words);  // free text (error messages): unsafe bytes become '_'
  bool overflow() const { return overflow_; }
  // Appends " *crc\n". Returns the frame (NUL terminated) and its length.
  const char* finish(size_t* n);

 private:
  void raw(const char* s, size_t n);
  void sep();
  char buf_[kMaxLine + 1];
  size_t len_;
  bool overflow_;
};

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_FRAME_H
