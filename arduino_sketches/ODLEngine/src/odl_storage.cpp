#include "odl_storage.h"
#include "odl_numerics.h"

#include "odl_blob.h"

ODL_NUMERICS_BEGIN
namespace odl {

static const uint8_t kSlotMagic[4] = {'O', 'D', 'L', 'S'};

static uint32_t rd32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void wr32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

// Checks one slot's header + blob by streaming it through the CRC (no buffer
// needed). Returns true and fills seq/len if the slot holds a valid record.
static bool slot_valid(Storage& s, uint8_t slot, uint32_t* seq, uint32_t* len) {
  uint8_t hdr[kSlotHeaderBytes];
  if (!s.read(slot, 0, hdr, sizeof(hdr))) return false;
  if (memcmp(hdr, kSlotMagic, 4) != 0) return false;
  const uint32_t n = rd32(hdr + 8);
  if (n == 0 || n > s.slot_bytes() - kSlotHeaderBytes) return false;
  uint32_t crc = crc32(hdr + 4, 8);
  uint8_t buf[64];
  for (uint32_t off = 0; off < n; off += sizeof(buf)) {
    const uint32_t k = n - off < sizeof(buf) ? n - off : (uint32_t)sizeof(buf);
    if (!s.read(slot, kSlotHeaderBytes + off, buf, k)) return false;
    crc = crc32(buf, k, crc);
  }
  if (crc != rd32(hdr + 12)) return false;
  *seq = rd32(hdr + 4);
  *len = n;
  return true;
}

int storage_newest(Storage& s, uint32_t* seq) {
  uint32_t q[2] = {0, 0}, n[2] = {0, 0};
  const bool v0 = slot_valid(s, 0, &q[0], &n[0]);
  const bool v1 = slot_valid(s, 1, &q[1], &n[1]);
  int best = -1;
  if (v0 && v1)
    best = (int32_t)(q[1] - q[0]) > 0 ? 1 : 0;
  else if (v0)
    best = 0;
  else if (v1)
    best = 1;
  if (best >= 0 && seq) *seq = q[best];
  return best;
}

Status storage_save(Storage& s, uint8_t* record, uint32_t blob_len) {
  if (!record) return kErrBadArgument;
  SlotWriter w;  // the one record writer (odl_engine.h streams its extended records through it too)
  Status st = w.begin(s, blob_len);
  if (st == kOk) st = w.write(record + kSlotHeaderBytes, blob_len);
  return st == kOk ? w.finish() : st;
}

Status storage_load(Storage& s, uint8_t* record, uint32_t capacity, uint32_t* blob_len) {
  if (!record || !blob_len) return kErrBadArgument;
  const int slot = storage_newest(s, nullptr);
  if (slot < 0) return kErrStorageEmpty;
  uint8_t hdr[kSlotHeaderBytes];
  if (!s.read((uint8_t)slot, 0, hdr, sizeof(hdr))) return kErrStorageIo;
  const uint32_t n = rd32(hdr + 8);
  if (n + kSlotHeaderBytes > capacity) return kErrBlobShape;
  if (!s.read((uint8_t)slot, 0, record, kSlotHeaderBytes + n)) return kErrStorageIo;
  // the slot was validated by streaming; check again what actually landed in RAM
  uint32_t crc = crc32(record + 4, 8);
  crc = crc32(record + kSlotHeaderBytes, n, crc);
  if (crc != rd32(record + 12)) return kErrStorageIo;
  *blob_len = n;
  return kOk;
}

Status SlotWriter::begin(Storage& s, uint32_t payload_len) {
  s_ = &s;
  err_ = kOk;
  if (payload_len == 0 || (payload_len & 3u)) return err_ = kErrBadArgument;
  if (payload_len > s.slot_bytes() || payload_len + kSlotHeaderBytes > s.slot_bytes())
    return err_ = kErrStorageTooSmall;
  uint32_t seq = 0;
  const int newest = storage_newest(s, &seq);
  target_ = newest == 0 ? 1 : 0;
  seq_ = newest < 0 ? 1u : seq + 1u;
  len_ = payload_len;
  off_ = 0;
  fill_ = 0;
  uint8_t h[8];
  wr32(h, seq_);
  wr32(h + 4, len_);
  crc_ = crc32(h, 8);
  if (!s.erase_slot(target_)) err_ = kErrStorageIo;
  return err_;
}

Status SlotWriter::flush() {
  if (err_ != kOk || fill_ == 0) return err_;
  if (!s_->write(target_, kSlotHeaderBytes + off_, buf_, fill_)) return err_ = kErrStorageIo;
  off_ += fill_;
  fill_ = 0;
  return kOk;
}

Status SlotWriter::write(const void* data, uint32_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (err_ != kOk) return err_;
  if (off_ + fill_ + len > len_) return err_ = kErrBadArgument;
  crc_ = crc32(p, len, crc_);
  while (len > 0) {
    const uint32_t k = len < sizeof(buf_) - fill_ ? len : (uint32_t)sizeof(buf_) - fill_;
    memcpy(buf_ + fill_, p, k);
    fill_ += k;
    p += k;
    len -= k;
    if (fill_ == sizeof(buf_) && flush() != kOk) return err_;
  }
  return kOk;
}

Status SlotWriter::finish() {
  if (flush() != kOk) return err_;
  if (off_ != len_) return err_ = kErrBadArgument;
  uint8_t hdr[kSlotHeaderBytes];
  memcpy(hdr, kSlotMagic, 4);
  wr32(hdr + 4, seq_);
  wr32(hdr + 8, len_);
  wr32(hdr + 12, crc_);
  if (!s_->write(target_, 0, hdr, sizeof(hdr))) return err_ = kErrStorageIo;
  uint32_t q = 0, n = 0;
  if (!slot_valid(*s_, target_, &q, &n) || q != seq_) return err_ = kErrStorageIo;  // read back
  return kOk;
}

Status storage_newest_record(Storage& s, uint8_t* slot, uint32_t* payload_len) {
  uint32_t seq = 0, n = 0;
  const int best = storage_newest(s, &seq);
  if (best < 0) return kErrStorageEmpty;
  if (!slot_valid(s, (uint8_t)best, &seq, &n)) return kErrStorageIo;
  *slot = (uint8_t)best;
  *payload_len = n;
  return kOk;
}

Status storage_read_payload(Storage& s, uint8_t slot, uint32_t offset, void* data, uint32_t len) {
  if (offset + len < offset || kSlotHeaderBytes + offset + len > s.slot_bytes()) return kErrBadArgument;
  return s.read(slot, kSlotHeaderBytes + offset, static_cast<uint8_t*>(data), len) ? kOk : kErrStorageIo;
}

}  // namespace odl
ODL_NUMERICS_END
