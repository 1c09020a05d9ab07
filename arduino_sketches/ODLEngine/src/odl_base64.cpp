// odl_base64.cpp - see odl_base64.h.
#include "odl_base64.h"

namespace odl {

namespace {
const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int decode_char(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

size_t base64_encode(const uint8_t* data, size_t n, char* out, size_t capacity) {
  size_t need = base64_encoded_len(n);
  if (need > capacity || (data == nullptr && n > 0)) return 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(data[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(data[i + 1]) << 8;
    if (i + 2 < n) v |= data[i + 2];
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = (i + 1 < n) ? kAlphabet[(v >> 6) & 63] : '=';
    out[o++] = (i + 2 < n) ? kAlphabet[v & 63] : '=';
  }
  if (o < capacity) out[o] = '\0';
  return o;
}

long base64_decode(const char* text, size_t len, uint8_t* out, size_t capacity) {
  if (len % 4 != 0 || (text == nullptr && len > 0)) return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    bool last = (i + 4 == len);
    int pad = 0;
    if (text[i + 3] == '=') pad = (text[i + 2] == '=') ? 2 : 1;
    if (pad && !last) return -1;
    int a = decode_char(text[i]);
    int b = decode_char(text[i + 1]);
    int c = pad >= 2 ? 0 : decode_char(text[i + 2]);
    int d = pad >= 1 ? 0 : decode_char(text[i + 3]);
    if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
    uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) | (static_cast<uint32_t>(c) << 6) |
                 static_cast<uint32_t>(d);
    size_t nbytes = 3 - pad;
    if (o + nbytes > capacity) return -1;
    // Non-canonical padding bits (e.g. "QR==") are rejected: one encoding per payload.
    if (pad == 2 && (v & 0xFFFF) != 0) return -1;
    if (pad == 1 && (v & 0xFF) != 0) return -1;
    out[o++] = static_cast<uint8_t>(v >> 16);
    if (nbytes > 1) out[o++] = static_cast<uint8_t>(v >> 8);
    if (nbytes > 2) out[o++] = static_cast<uint8_t>(v);
  }
  return static_cast<long>(o);
}

}  // namespace odl
