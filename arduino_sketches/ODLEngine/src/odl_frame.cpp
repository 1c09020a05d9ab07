// odl_frame.cpp - see odl_frame.h and arduino_sketches/PROTOCOL.md.
#include "odl_frame.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "odl_base64.h"
#include "odl_blob.h"

ODL_NUMERICS_BEGIN
namespace odl {

namespace {

bool is_token_char(char c) { return c >= 0x21 && c <= 0x7E && c != '$' && c != '*'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // lower case only: then every corrupted byte of the CRC field is detected
}

size_t format_i(long v, char* out) {
  if (v < 0) {
    out[0] = '-';
    return 1 + format_u32(static_cast<uint32_t>(-(v + 1)) + 1u, out + 1);
  }
  return format_u32(static_cast<uint32_t>(v), out);
}

}  // namespace

size_t format_u32(uint32_t v, char* out) {
  char tmp[11];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  out[n] = 0;
  return n;
}

// ------------------------------------------------------------------ parsing

bool parse_u32(const char* s, uint32_t* out) {
  if (!s || !*s) return false;
  uint64_t v = 0;
  size_t n = 0;
  for (; s[n]; ++n) {
    if (s[n] < '0' || s[n] > '9' || n >= 10) return false;
    v = v * 10 + static_cast<uint64_t>(s[n] - '0');
  }
  if (v > 0xFFFFFFFFull) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool parse_float(const char* s, float* out) {
  if (!s || !*s) return false;
  for (const char* p = s; *p; ++p) {  // digits, sign, '.', exponent only (no nan/inf/hex)
    char c = *p;
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) return false;
  }
  char* end = nullptr;
  float v = strtof(s, &end);
  if (end == s || *end != 0 || !isfinite(v)) return false;
  *out = v;
  return true;
}

size_t format_float(float fv, char* out) {
  char* p = out;
  if (fv != fv) {
    strcpy(out, "nan");
    return 3;
  }
  if (fv < 0) {
    *p++ = '-';
    fv = -fv;
  }
  if (isinf(fv)) {
    strcpy(p, "inf");
    return static_cast<size_t>(p - out) + 3;
  }
  if (fv == 0.0f) {
    *p++ = '0';
    *p = 0;
    return static_cast<size_t>(p - out);
  }
  double d = fv;
  int e = static_cast<int>(floor(log10(d)));
  double m = d / pow(10.0, e - 5);
  uint32_t mi = static_cast<uint32_t>(m + 0.5);
  if (mi >= 1000000u) {
    mi = (mi + 5) / 10;
    e += 1;
  }
  if (mi < 100000u) {  // log10 rounding at a power of ten
    mi *= 10;
    e -= 1;
  }
  if (mi >= 1000000u) {
    mi /= 10;
    e += 1;
  }
  char dig[7];
  for (int i = 5; i >= 0; --i) {
    dig[i] = static_cast<char>('0' + mi % 10);
    mi /= 10;
  }
  int nd = 6;
  while (nd > 1 && dig[nd - 1] == '0') --nd;
  if (e >= -4 && e < 6) {
    if (e >= 0) {
      for (int i = 0; i <= e; ++i) *p++ = i < nd ? dig[i] : '0';
      if (nd > e + 1) {
        *p++ = '.';
        for (int i = e + 1; i < nd; ++i) *p++ = dig[i];
      }
    } else {
      *p++ = '0';
      *p++ = '.';
      for (int i = 0; i < -e - 1; ++i) *p++ = '0';
      for (int i = 0; i < nd; ++i) *p++ = dig[i];
    }
  } else {
    *p++ = dig[0];
    if (nd > 1) {
      *p++ = '.';
      for (int i = 1; i < nd; ++i) *p++ = dig[i];
    }
    *p++ = 'e';
    *p++ = e < 0 ? '-' : '+';
    int ae = e < 0 ? -e : e;
    if (ae >= 100) *p++ = static_cast<char>('0' + ae / 100);
    *p++ = static_cast<char>('0' + (ae / 10) % 10);
    *p++ = static_cast<char>('0' + ae % 10);
  }
  *p = 0;
  return static_cast<size_t>(p - out);
}

bool valid_class_name(const char* s) {
  if (!s) return false;
  size_t n = 0;
  for (; s[n]; ++n) {
    char c = s[n];
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok || n >= kClassNameBytes - 1) return false;
  }
  return n > 0;
}

int parse_frame(char* line, size_t len, Frame* out, bool* seq_trusted) {
  *seq_trusted = false;
  out->seq = 0;
  out->word = "";
  out->num_tokens = 0;
  if (len < 1 || line[0] != '$') return kPeMalformed;
  // Tail " *XXXXXXXX".
  if (len < 11 || line[len - 10] != ' ' || line[len - 9] != '*') return kPeBadCrc;
  uint32_t want = 0;
  for (size_t i = len - 8; i < len; ++i) {
    int h = hex_value(line[i]);
    if (h < 0) return kPeBadCrc;
    want = (want << 4) | static_cast<uint32_t>(h);
  }
  size_t body_len = len - 11;
  if (crc32(reinterpret_cast<const uint8_t*>(line + 1), body_len) != want) return kPeBadCrc;
  char* body = line + 1;
  body[body_len] = 0;
  // Tokens: single spaces between, token characters only.
  char* toks[kMaxTokens + 2];
  size_t nt = 0;
  size_t start = 0;
  bool too_many = false;
  for (size_t i = 0; i <= body_len; ++i) {
    if (i == body_len || body[i] == ' ') {
      if (i == start) return kPeMalformed;  // empty token (double / leading / trailing space)
      body[i] = 0;
      if (nt < kMaxTokens + 2)
        toks[nt++] = body + start;
      else
        too_many = true;
      start = i + 1;
    } else if (!is_token_char(body[i])) {
      return kPeMalformed;
    }
  }
  uint32_t seq = 0;
  if (nt < 1 || strlen(toks[0]) > 9 || !parse_u32(toks[0], &seq)) return kPeMalformed;
  out->seq = seq;
  *seq_trusted = true;
  if (nt < 2) return kPeMalformed;
  if (too_many) return kPeBadArg;
  out->word = toks[1];
  out->num_tokens = static_cast<uint8_t>(nt - 2);
  for (size_t i = 2; i < nt; ++i) out->tokens[i - 2] = toks[i];
  return 0;
}

const char* frame_arg(const Frame& f, const char* key, uint8_t first) {
  size_t kl = strlen(key);
  for (uint8_t i = first; i < f.num_tokens; ++i) {
    if (strncmp(f.tokens[i], key, kl) == 0 && f.tokens[i][kl] == '=') return f.tokens[i] + kl + 1;
  }
  return nullptr;
}

// ----------------------------------------------------------- LineAssembler

void LineAssembler::clear() {
  len_ = 0;
  buf_[0] = 0;
  state_ = kIdle;
  junk_ = false;
  bad_byte_ = false;
  error_ = 0;
  reason_ = "";
  discard_error_ = 0;
  discard_reason_ = "";
}

LineAssembler::Result LineAssembler::feed(uint8_t c) {
  switch (state_) {
    case kIdle:
      if (c == '$') {
        state_ = kInFrame;
        buf_[0] = '$';
        len_ = 1;
        if (junk_) {
          junk_ = false;
          error_ = kPeMalformed;
          reason_ = "bytes outside a frame before its start";
          return kReject;
        }
        return kNothing;
      }
      if (c == '\n') {
        if (junk_) {
          junk_ = false;
          error_ = kPeMalformed;
          reason_ = "line is not a frame: no start byte (lost or corrupted byte?)";
          return kReject;
        }
        return kNothing;
      }
      if (c != ' ' && c != '\r' && c != '\t') junk_ = true;
      return kNothing;

    case kInFrame:
      if (c == '$') {
        buf_[0] = '$';
        len_ = 1;
        error_ = kPeMalformed;
        reason_ = "truncated frame: a new frame started before its end of line";
        return kReject;
      }
      if (c == '\n') {
        state_ = kIdle;
        if (len_ > 1 && buf_[len_ - 1] == '\r') --len_;
        buf_[len_] = 0;
        for (size_t i = 0; i < len_; ++i) {
          if (buf_[i] < 0x20 || buf_[i] > 0x7E) {
            error_ = kPeMalformed;
            reason_ = "non-printable byte inside a frame";
            return kReject;
          }
        }
        return kFrame;
      }
      if (len_ + 1 >= kMaxLine) {  // no room for this byte plus '\n'
        state_ = kDiscard;
        discard_error_ = kPeLineTooLong;
        discard_reason_ = "frame longer than 1024 bytes (send payloads in chunks)";
        return kNothing;
      }
      buf_[len_++] = static_cast<char>(c);
      return kNothing;

    default:  // kDiscard
      if (c == '\n' || c == '$') {
        error_ = discard_error_;
        reason_ = discard_reason_;
        if (c == '$') {
          state_ = kInFrame;
          buf_[0] = '$';
          len_ = 1;
        } else {
          state_ = kIdle;
          len_ = 0;
        }
        return kReject;
      }
      return kNothing;
  }
}

// ------------------------------------------------------------- FrameWriter

void FrameWriter::raw(const char* s, size_t n) {
  if (overflow_) return;
  // keep room for " *xxxxxxxx\n" (11 bytes) and NUL
  if (len_ + n + 12 > sizeof(buf_)) {
    overflow_ = true;
    return;
  }
  memcpy(buf_ + len_, s, n);
  len_ += n;
  buf_[len_] = 0;
}

void FrameWriter::sep() { raw(" ", 1); }

void FrameWriter::begin(uint32_t seq, const char* word) {
  len_ = 0;
  overflow_ = false;
  char num[12];
  raw("$", 1);
  raw(num, format_u32(seq, num));
  sep();
  raw(word, strlen(word));
}

void FrameWriter::token(const char* t) {
  sep();
  raw(t, strlen(t));
}

void FrameWriter::kv(const char* key, const char* value) {
  sep();
  raw(key, strlen(key));
  raw("=", 1);
  if (!value || !*value) {
    raw("-", 1);
    return;
  }
  for (const char* p = value; *p; ++p) {
    char c = is_token_char(*p) ? *p : '_';
    raw(&c, 1);
  }
}

void FrameWriter::kv_u(const char* key, uint32_t v) {
  char num[12];
  format_u32(v, num);
  kv(key, num);
}

void FrameWriter::kv_i(const char* key, long v) {
  char num[24];
  format_i(v, num);
  kv(key, num);
}

void FrameWriter::kv_f(const char* key, float v) {
  char num[20];
  format_float(v, num);
  kv(key, num);
}

void FrameWriter::kv_floats(const char* key, const float* v, size_t n) {
  sep();
  raw(key, strlen(key));
  raw("=", 1);
  char num[20];
  for (size_t i = 0; i < n; ++i) {
    if (i) raw(",", 1);
    raw(num, format_float(v[i], num));
  }
}

void FrameWriter::kv_u16s(const char* key, const uint16_t* v, size_t n, size_t stride, size_t rows) {
  sep();
  raw(key, strlen(key));
  raw("=", 1);
  char num[12];
  bool first = true;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < n; ++c) {
      if (!first) raw(",", 1);
      first = false;
      raw(num, format_u32(v[r * stride + c], num));
    }
  }
}

void FrameWriter::kv_b64(const char* key, const uint8_t* data, size_t n) {
  sep();
  raw(key, strlen(key));
  raw("=", 1);
  size_t need = base64_encoded_len(n);
  if (overflow_ || len_ + need + 12 > sizeof(buf_)) {
    overflow_ = true;
    return;
  }
  len_ += base64_encode(data, n, buf_ + len_, sizeof(buf_) - len_);
  buf_[len_] = 0;
}

void FrameWriter::text(const char* words) {
  if (!words) return;
  sep();
  bool any = false;
  for (const char* p = words; *p; ++p) {
    char c = *p;
    if (c < 0x20 || c > 0x7E || c == '$' || c == '*') c = '_';
    // collapse to single spaces, no trailing space
    if (c == ' ' && (!any || p[1] == 0 || p[1] == ' ')) continue;
    raw(&c, 1);
    any = true;
  }
  if (!any) raw("-", 1);
}

const char* FrameWriter::finish(size_t* n) {
  // CRC over the body (after '$')
  uint32_t crc = crc32(reinterpret_cast<const uint8_t*>(buf_ + 1), len_ - 1);
  static const char kHex[] = "0123456789abcdef";
  char tail[11];
  tail[0] = ' ';
  tail[1] = '*';
  for (int i = 0; i < 8; ++i) tail[2 + i] = kHex[(crc >> (28 - 4 * i)) & 15];
  tail[10] = '\n';
  memcpy(buf_ + len_, tail, 11);  // raw() always keeps room for this
  len_ += 11;
  buf_[len_] = 0;
  *n = len_;
  return buf_;
}

}  // namespace odl
ODL_NUMERICS_END
