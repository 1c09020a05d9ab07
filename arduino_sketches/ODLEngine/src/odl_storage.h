// odl_storage.h - two-slot, CRC-checked storage of the weights blob.
//
// A record is  "ODLS" | u32 sequence | u32 blob_len | u32 CRC32(sequence, blob_len, blob) | blob.
// save() writes the new record into the slot NOT holding the newest valid
// record (erase, then program in order), so a save interrupted at any byte
// leaves the previous record intact; load() picks the valid record with the
// highest sequence number (serial-number arithmetic, wraps safely).
#ifndef ODL_STORAGE_H
#define ODL_STORAGE_H

#include "odl_numerics.h"
#include <stdint.h>
#include <string.h>

#include "odl_types.h"

ODL_NUMERICS_BEGIN
namespace odl {

static const uint32_t kSlotHeaderBytes = 16;
static const uint32_t kSlotOverheadBytes = kSlotHeaderBytes;

// NOR-flash-like storage with two slots. write() may only clear bits of
// erased (0xFF) bytes; offsets and lengths are multiples of 4.
class Storage {
 public:
  virtual uint32_t slot_bytes() const = 0;
  virtual bool erase_slot(uint8_t slot) = 0;
  virtual bool write(uint8_t slot, uint32_t offset, const uint8_t* data, uint32_t len) = 0;
  virtual bool read(uint8_t slot, uint32_t offset, uint8_t* data, uint32_t len) = 0;

 protected:
  ~Storage() {}
};

// record: kSlotHeaderBytes free bytes followed by blob_len bytes of blob (a multiple of 4);
// written through SlotWriter (below), the header last.
Status storage_save(Storage& s, uint8_t* record, uint32_t blob_len);
// Reads the newest valid record into record (capacity bytes); *blob_len
// receives the blob length (blob at record + kSlotHeaderBytes).
Status storage_load(Storage& s, uint8_t* record, uint32_t capacity, uint32_t* blob_len);
// Which slot holds the newest valid record (-1: none). seq receives its sequence.
int storage_newest(Storage& s, uint32_t* seq);

// Streams one record of payload_len bytes (a multiple of 4) into the slot that does not hold the
// newest valid record, from pieces in RAM (no record-sized buffer): begin, write pieces (any
// sizes; buffered into 4-byte aligned chunks), finish. The header goes in last, so a save cut
// at any byte leaves that slot invalid and the previous record the newest.
class SlotWriter {
 public:
  Status begin(Storage& s, uint32_t payload_len);
  Status write(const void* data, uint32_t len);
  Status finish();

 private:
  Storage* s_ = nullptr;
  uint8_t target_ = 0;
  uint32_t seq_ = 0, len_ = 0, off_ = 0, crc_ = 0, fill_ = 0;
  Status err_ = kErrBadArgument;
  uint8_t buf_[256];
  Status flush();
};
// The newest valid record (CRC checked over all of it): its slot and payload length.
Status storage_newest_record(Storage& s, uint8_t* slot, uint32_t* payload_len);
// Reads len payload bytes at offset of a slot's record.
Status storage_read_payload(Storage& s, uint8_t slot, uint32_t offset, void* data, uint32_t len);

// SAVE / LOAD of an engine's weights blob, the one implementation every engine uses (Lab 1's
// odl::Engine, Lab 2's odl::AudioEngine): encode(blob, capacity, &written) serializes into the
// record buffer after its header, then storage_save; storage_load, then decode(blob, len) applies
// it (decode validates the blob before it changes anything).
template <class Encode>
Status storage_save_blob(Storage& s, uint8_t* record, uint32_t blob_capacity, Encode encode) {
  uint32_t n = 0;
  const Status st = encode(record + kSlotHeaderBytes, blob_capacity, &n);
  if (st != kOk) return st;
  return storage_save(s, record, n);
}
template <class Decode>
Status storage_load_blob(Storage& s, uint8_t* record, uint32_t record_capacity, Decode decode) {
  uint32_t n = 0;
  const Status st = storage_load(s, record, record_capacity, &n);
  if (st != kOk) return st;
  return decode(record + kSlotHeaderBytes, n);
}

// RAM storage (host builds, qemu, tests). fail_after_bytes simulates a power
// cut: after that many bytes have been erased or programmed in total, every
// further byte is refused (erase and write return false, the flash keeps
// whatever state it reached). A negative value disables the cut.
template <uint32_t SlotBytes>
class RamStorage : public Storage {
 public:
  RamStorage() { memset(mem_, 0xFF, sizeof(mem_)); }
  uint32_t slot_bytes() const override { return SlotBytes; }
  bool erase_slot(uint8_t slot) override {
    if (slot > 1) return false;
    for (uint32_t i = 0; i < SlotBytes; ++i) {
      if (!take()) return false;
      mem_[slot][i] = 0xFF;
    }
    return true;
  }
  bool write(uint8_t slot, uint32_t offset, const uint8_t* data, uint32_t len) override {
    if (slot > 1 || offset + len > SlotBytes || (offset | len) & 3u) return false;
    for (uint32_t i = 0; i < len; ++i) {
      if (!take()) return false;
      mem_[slot][offset + i] &= data[i];  // NOR flash: programming only clears bits
    }
    return true;
  }
  bool read(uint8_t slot, uint32_t offset, uint8_t* data, uint32_t len) override {
    if (slot > 1 || offset + len > SlotBytes) return false;
    memcpy(data, mem_[slot] + offset, len);
    return true;
  }
  void set_fail_after(long bytes) { budget_ = bytes; }
  uint8_t* raw(uint8_t slot) { return mem_[slot]; }

 private:
  bool take() {
    if (budget_ < 0) return true;
    if (budget_ == 0) return false;
    --budget_;
    return true;
  }
  uint8_t mem_[2][SlotBytes];
  long budget_ = -1;
};

}  // namespace odl
ODL_NUMERICS_END

// On the Nano 33 BLE: FlashIAPStorage (nano33ble/odl_flash_iap.h), the internal flash.

#endif  // ODL_STORAGE_H
