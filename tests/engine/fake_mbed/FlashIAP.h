// A model of mbed::FlashIAP on the nRF52840 (Arduino Nano 33 BLE) for host tests of
// odl::FlashIAPStorage: 1 MB of flash at 0x0, 4 KB erase sectors, 4-byte program units
// (mbed's NRF52 flash_api: flash_get_page_size() == 4, sector = NRF_FICR->CODEPAGESIZE), erased
// value 0xFF. Like the NVMC, programming can only clear bits (new = old & data), program() needs
// a 4-byte aligned address and size, erase() a sector-aligned address and whole sectors. The
// same API and return codes as drivers/FlashIAP.h (0 = ok, -1 = error).
//
// Power cuts: after `budget` program or erase steps (one step = one 4-byte word or one sector)
// the next step is cut halfway and the flash is dead until power_on(): a cut word has only some of
// its bits cleared, a cut sector erase leaves some bits set and some not (pseudo-random, seeded).
#ifndef FAKE_MBED_FLASHIAP_H
#define FAKE_MBED_FLASHIAP_H

#include <stdint.h>
#include <string.h>

struct Nrf52FlashModel {
  static const uint32_t kStart = 0x0, kSize = 0x100000, kSector = 4096, kPage = 4;
  uint8_t mem[kSize];
  long budget = -1;  // steps left before the cut; -1: no cut
  bool dead = false;
  uint32_t rng = 12345;
  long steps = 0;  // program + erase steps done since power_on
  int inits = 0;

  Nrf52FlashModel() { memset(mem, 0xFF, sizeof(mem)); }
  void power_on() {
    dead = false;
    budget = -1;
    steps = 0;
  }
  uint32_t next() {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  }
  // true: perform the step; false: the power fails during this step
  bool step() {
    if (dead) return false;
    if (budget == 0) {
      dead = true;
      return false;
    }
    if (budget > 0) --budget;
    ++steps;
    return true;
  }
  // flash starts at 0 on the nRF52840, so an address is its offset
  static bool in_range(uint32_t addr, uint32_t size) { return (uint64_t)addr + size <= kSize; }
  static Nrf52FlashModel& get() {
    static Nrf52FlashModel m;
    return m;
  }
};

namespace mbed {

class FlashIAP {
 public:
  int init() {
    ++Nrf52FlashModel::get().inits;
    return 0;
  }
  int deinit() { return 0; }
  int read(void* buffer, uint32_t addr, uint32_t size) {
    Nrf52FlashModel& m = Nrf52FlashModel::get();
    if (m.dead || !m.in_range(addr, size)) return -1;
    memcpy(buffer, m.mem + addr, size);
    return 0;
  }
  int program(const void* buffer, uint32_t addr, uint32_t size) {
    Nrf52FlashModel& m = Nrf52FlashModel::get();
    if (addr % m.kPage || size % m.kPage || !m.in_range(addr, size)) return -1;
    const uint8_t* src = static_cast<const uint8_t*>(buffer);
    for (uint32_t w = 0; w < size; w += m.kPage) {
      uint8_t* dst = m.mem + addr + w;
      if (!m.step()) {
        if (!m.dead) return -1;
        const uint32_t keep = m.next();  // half-programmed word: only some bits cleared
        for (uint32_t b = 0; b < m.kPage; ++b) dst[b] &= (uint8_t)(src[w + b] | (uint8_t)(keep >> (8 * b)));
        return -1;
      }
      for (uint32_t b = 0; b < m.kPage; ++b) dst[b] &= src[w + b];
    }
    return 0;
  }
  int erase(uint32_t addr, uint32_t size) {
    Nrf52FlashModel& m = Nrf52FlashModel::get();
    if (addr % m.kSector || size % m.kSector || !m.in_range(addr, size)) return -1;
    for (uint32_t s = 0; s < size; s += m.kSector) {
      uint8_t* dst = m.mem + addr + s;
      if (!m.step()) {
        if (!m.dead) return -1;
        for (uint32_t b = 0; b < m.kSector; b += 4) {  // half-erased sector: some bits set
          const uint32_t set = m.next();
          for (uint32_t k = 0; k < 4; ++k) dst[b + k] |= (uint8_t)(set >> (8 * k));
        }
        return -1;
      }
      memset(dst, 0xFF, m.kSector);
    }
    return 0;
  }
  uint32_t get_sector_size(uint32_t addr) const { return addr < Nrf52FlashModel::kSize ? Nrf52FlashModel::kSector : 0; }
  uint32_t get_flash_start() const { return Nrf52FlashModel::kStart; }
  uint32_t get_flash_size() const { return Nrf52FlashModel::kSize; }
  uint32_t get_page_size() const { return Nrf52FlashModel::kPage; }
  uint8_t get_erase_value() const { return 0xFF; }
};

}  // namespace mbed

#endif  // FAKE_MBED_FLASHIAP_H
