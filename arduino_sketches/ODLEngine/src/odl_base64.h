// odl_base64.h - standard base64 (RFC 4648, '+' '/', '=' padding) without heap.
#ifndef ODL_BASE64_H
#define ODL_BASE64_H

#include <stddef.h>
#include <stdint.h>

namespace odl {

// Characters needed to encode n bytes (without a terminating NUL).
inline size_t base64_encoded_len(size_t n) { return ((n + 2) / 3) * 4; }

// Encodes n bytes into out (capacity bytes, NUL terminated if room). Returns the
// number of characters written (without NUL), or 0 if out is too small.
size_t base64_encode(const uint8_t* data, size_t n, char* out, size_t capacity);

// Decodes exactly len characters (a multiple of 4, padding only at the end).
// Returns the number of bytes written, or -1 on any invalid character, bad
// length, bad padding or if out (capacity bytes) is too small.
long base64_decode(const char* text, size_t len, uint8_t* out, size_t capacity);

}  // namespace odl

#endif  // ODL_BASE64_H
