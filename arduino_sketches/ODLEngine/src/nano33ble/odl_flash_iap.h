// odl_flash_iap.h - two-slot weight storage in the internal flash of the nRF52840 (Arduino Nano
// 33 BLE) through mbed::FlashIAP: 4 KB erase sectors, 4-byte program units, erased value 0xFF.
//
// The two slots are the last 2 x slot_bytes of flash (slot_bytes rounded up to the sector size)
// unless base_address says otherwise. begin() refuses a slot region that is not sector-aligned,
// lies outside the flash, or overlaps the firmware image (by default mbed's
// FLASHIAP_APP_ROM_END_ADDR: the linker's __etext + the .data load image). Keep the slots clear of any
// KVStore/TDBStore.
//
// Re-uploading a sketch may or may not erase the slots: it depends on how the uploader erases
// (a whole-flash erase before programming clears them, a sector-by-sector programmer that only
// touches the new image keeps them). After an upload, LOAD either finds the previous weights or
// reports that storage is empty; it never loads a damaged record (CRC-checked, two slots).
//
// Tested on the host against a model of FlashIAP on the nRF52840, with a power cut at every
// program and erase step (tests/engine/flash_iap_test.cpp).
#ifndef ODL_FLASH_IAP_H
#define ODL_FLASH_IAP_H

#if defined(ARDUINO_ARCH_MBED) || defined(ODL_FLASHIAP_MODEL)
#include <stdint.h>

#include "FlashIAP.h"
#include "odl_storage.h"

// The first flash address after the firmware image, from the mbed core's linker symbols
// (__etext + the .data load image): begin() checks the slots against it by default.
#if defined(FLASHIAP_APP_ROM_END_ADDR)
#define ODL_FIRMWARE_END FLASHIAP_APP_ROM_END_ADDR
#else
#define ODL_FIRMWARE_END 0u
#endif

namespace odl {

class FlashIAPStorage : public Storage {
 public:
  explicit FlashIAPStorage(uint32_t slot_bytes = 8192, uint32_t base_address = 0)
      : want_(slot_bytes), base_(base_address) {}
  // firmware_end: first address after the firmware image (0: not checked).
  bool begin(uint32_t firmware_end = ODL_FIRMWARE_END);
  uint32_t slot_bytes() const override { return slot_; }
  bool erase_slot(uint8_t slot) override;
  bool write(uint8_t slot, uint32_t offset, const uint8_t* data, uint32_t len) override;
  bool read(uint8_t slot, uint32_t offset, uint8_t* data, uint32_t len) override;
  uint32_t base_address() const { return base_; }
  // Why begin() failed, or nullptr.
  const char* error() const { return error_; }

 private:
  mbed::FlashIAP flash_;
  uint32_t want_;
  uint32_t base_;
  uint32_t slot_ = 0;
  bool ok_ = false;
  const char* error_ = nullptr;
};

}  // namespace odl
#endif  // ARDUINO_ARCH_MBED || ODL_FLASHIAP_MODEL

#endif  // ODL_FLASH_IAP_H
