// odl_flash_iap.cpp - see odl_flash_iap.h.
#include "odl_flash_iap.h"

#if defined(ARDUINO_ARCH_MBED) || defined(ODL_FLASHIAP_MODEL)

namespace odl {

bool FlashIAPStorage::begin(uint32_t firmware_end) {
  ok_ = false;
  if (flash_.init() != 0) {
    error_ = "FlashIAP init failed";
    return false;
  }
  const uint32_t start = flash_.get_flash_start();
  const uint32_t size = flash_.get_flash_size();
  const uint32_t sector = flash_.get_sector_size(start + size - 1);
  if (sector == 0 || want_ == 0) {
    error_ = "no flash sector size";
    return false;
  }
  slot_ = (want_ + sector - 1) / sector * sector;
  if (2 * slot_ > size) {
    error_ = "slots larger than the flash";
    return false;
  }
  const uint32_t base = base_ != 0 ? base_ : start + size - 2 * slot_;
  if (base < start || base - start > size - 2 * slot_) {
    error_ = "slots outside the flash";
    return false;
  }
  if (flash_.get_sector_size(base) != sector || (base - start) % sector != 0) {
    error_ = "slot base is not sector-aligned";
    return false;
  }
  if (firmware_end != 0 && base < firmware_end) {
    error_ = "slots overlap the firmware image";
    return false;
  }
  base_ = base;
  error_ = nullptr;
  ok_ = true;
  return true;
}

bool FlashIAPStorage::erase_slot(uint8_t slot) {
  if (!ok_ || slot > 1) return false;
  return flash_.erase(base_ + slot * slot_, slot_) == 0;
}

bool FlashIAPStorage::write(uint8_t slot, uint32_t offset, const uint8_t* data, uint32_t len) {
  if (!ok_ || slot > 1 || offset > slot_ || len > slot_ - offset) return false;
  const uint32_t page = flash_.get_page_size();
  if (page == 0 || offset % page || len % page) return false;
  return flash_.program(data, base_ + slot * slot_ + offset, len) == 0;
}

bool FlashIAPStorage::read(uint8_t slot, uint32_t offset, uint8_t* data, uint32_t len) {
  if (!ok_ || slot > 1 || offset > slot_ || len > slot_ - offset) return false;
  return flash_.read(data, base_ + slot * slot_ + offset, len) == 0;
}

}  // namespace odl

#endif  // ARDUINO_ARCH_MBED || ODL_FLASHIAP_MODEL
