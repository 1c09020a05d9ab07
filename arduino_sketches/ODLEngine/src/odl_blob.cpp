#include "odl_blob.h"
#include "odl_numerics.h"

#include <string.h>

ODL_NUMERICS_BEGIN
namespace odl {

uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < len; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static void put_u16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v & 0xFF);
  p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void put_f32(uint8_t* p, float f) {
  uint32_t v;
  memcpy(&v, &f, 4);
  put_u32(p, v);
}
static float get_f32(const uint8_t* p) {
  const uint32_t v = get_u32(p);
  float f;
  memcpy(&f, &v, 4);
  return f;
}

Status blob_encode(const HeadView& h, uint8_t* out, uint32_t capacity, uint32_t* written) {
  if (!out) return kErrBadArgument;
  const uint32_t nc = h.num_classes, fd = h.feature_dim;
  const uint32_t size = blob_size_for(nc, fd);
  if (capacity < size) return kErrBufferTooSmall;
  uint8_t* p = out;
  memcpy(p, "ODLW", 4);
  put_u16(p + 4, kBlobVersion);
  put_u16(p + 6, kBlobDtypeFloat32);
  put_u16(p + 8, (uint16_t)nc);
  put_u16(p + 10, (uint16_t)fd);
  put_u32(p + 12, blob_payload_for(nc, fd));
  p += kBlobHeaderBytes;
  for (uint32_t c = 0; c < nc; ++c, p += kClassNameBytes) memcpy(p, h.names[c], kClassNameBytes);
  for (uint32_t i = 0; i < nc * fd; ++i, p += 4) put_f32(p, h.W[i]);
  for (uint32_t c = 0; c < nc; ++c, p += 4) put_f32(p, h.b[c]);
  put_u32(p, crc32(out, size - 4));
  if (written) *written = size;
  return kOk;
}

Status blob_decode(HeadView& h, const uint8_t* data, uint32_t len) {
  if (!data) return kErrBadArgument;
  if (len < kBlobHeaderBytes + 4) return kErrBlobSize;
  if (memcmp(data, "ODLW", 4) != 0) return kErrBlobMagic;
  if (get_u16(data + 4) != kBlobVersion || get_u16(data + 6) != kBlobDtypeFloat32) return kErrBlobVersion;
  const uint32_t nc = get_u16(data + 8), fd = get_u16(data + 10);
  if (get_u32(data + 12) != blob_payload_for(nc, fd) || len != blob_size_for(nc, fd)) return kErrBlobSize;
  if (crc32(data, len - 4) != get_u32(data + len - 4)) return kErrBlobCrc;
  if (fd != h.feature_dim || nc > h.max_classes) return kErrBlobShape;
  // refuse NaN / Inf weights before anything is changed
  for (const uint8_t* q = data + kBlobHeaderBytes + nc * kClassNameBytes; q < data + len - 4; q += 4)
    if (!is_finite(get_f32(q))) return kErrNonFinite;
  const uint8_t* p = data + kBlobHeaderBytes;
  memset(h.names, 0, (size_t)kClassNameBytes * h.max_classes);
  for (uint32_t c = 0; c < nc; ++c, p += kClassNameBytes) {
    memcpy(h.names[c], p, kClassNameBytes);
    h.names[c][kClassNameBytes - 1] = 0;
  }
  for (uint32_t i = 0; i < nc * fd; ++i, p += 4) h.W[i] = get_f32(p);
  for (uint32_t c = 0; c < nc; ++c, p += 4) h.b[c] = get_f32(p);
  h.num_classes = (uint16_t)nc;
  memset(h.vW, 0, sizeof(float) * h.max_classes * fd);
  memset(h.vb, 0, sizeof(float) * h.max_classes);
  return kOk;
}

}  // namespace odl
ODL_NUMERICS_END
