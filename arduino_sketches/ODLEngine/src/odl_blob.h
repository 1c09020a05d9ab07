// odl_blob.h - the versioned, CRC32-checked head weights blob.
// Byte-identical to odlkit.weights.encode / decode (little-endian):
//   "ODLW" | u16 version (1) | u16 dtype (0 = float32) | u16 n_classes | u16 feature_dim |
//   u32 payload_bytes | n_classes x 16-byte NUL-padded names | W [n_classes][feature_dim] f32 |
//   b [n_classes] f32 | u32 CRC32 (zlib polynomial) of every byte before it.
#ifndef ODL_BLOB_H
#define ODL_BLOB_H

#include "odl_numerics.h"
#include <stddef.h>
#include <stdint.h>

#include "odl_head.h"
#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

static const uint16_t kBlobVersion = 1;
static const uint16_t kBlobDtypeFloat32 = 0;
static const uint32_t kBlobHeaderBytes = 16;

constexpr uint32_t blob_payload_for(uint32_t n_classes, uint32_t feature_dim) {
  return n_classes * kClassNameBytes + n_classes * feature_dim * 4u + n_classes * 4u;
}
constexpr uint32_t blob_size_for(uint32_t n_classes, uint32_t feature_dim) {
  return kBlobHeaderBytes + blob_payload_for(n_classes, feature_dim) + 4u;
}

// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320), chainable like zlib.crc32(data, crc).
uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc = 0);

Status blob_encode(const HeadView& h, uint8_t* out, uint32_t capacity, uint32_t* written);
// Validates magic, version, dtype, sizes and CRC before touching the head;
// on success replaces names, W, b and the class count and zeros the momentum.
Status blob_decode(HeadView& h, const uint8_t* data, uint32_t len);

}  // namespace odl
ODL_NUMERICS_END

#endif  // ODL_BLOB_H
