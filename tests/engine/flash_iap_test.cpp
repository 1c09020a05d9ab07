// odl::FlashIAPStorage (the Nano 33 BLE's weight storage) against a model of mbed::FlashIAP on
// the nRF52840 (fake_mbed/FlashIAP.h): slot placement checks, and a power cut at every program
// and erase step of a save, after which a fresh FlashIAPStorage (a reboot) must load either the
// old or the new record, never anything else. Built and run by tests/test_engine.py.
#include <stdio.h>
#include <string.h>

#include "FlashIAP.h"
#include "nano33ble/odl_flash_iap.h"

static int g_failures = 0, g_checks = 0;
#define CHECK(cond)                                          \
  do {                                                       \
    ++g_checks;                                              \
    if (!(cond)) {                                           \
      ++g_failures;                                          \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                        \
  } while (0)

static const uint32_t kBlob = 2208;  // a 64-feature x 8-class head blob is ~2.2 KB
static uint8_t g_record[odl::kSlotHeaderBytes + kBlob];

static void payload(uint8_t* blob, uint8_t tag) {
  for (uint32_t i = 0; i < kBlob; ++i) blob[i] = (uint8_t)(tag * 31u + i * 7u + (i >> 8));
}

static int save(uint8_t tag) {
  odl::FlashIAPStorage s(8192);
  if (!s.begin(0x30000)) return -100;
  payload(g_record + odl::kSlotHeaderBytes, tag);
  return odl::storage_save(s, g_record, kBlob);
}

// After a reboot: the tag of the record that loads (0: storage empty, -1: anything else).
static int load_tag() {
  odl::FlashIAPStorage s(8192);
  if (!s.begin(0x30000)) return -2;
  static uint8_t rec[odl::kSlotHeaderBytes + kBlob];
  uint32_t n = 0;
  const odl::Status st = odl::storage_load(s, rec, sizeof(rec), &n);
  if (st == odl::kErrStorageEmpty) return 0;
  if (st != odl::kOk || n != kBlob) return -1;
  static uint8_t want[kBlob];
  for (int tag = 1; tag < 8; ++tag) {
    payload(want, (uint8_t)tag);
    if (memcmp(want, rec + odl::kSlotHeaderBytes, kBlob) == 0) return tag;
  }
  return -1;
}

static void test_placement() {
  Nrf52FlashModel& m = Nrf52FlashModel::get();
  odl::FlashIAPStorage def(8192);
  CHECK(def.begin(0x40000));
  CHECK(def.base_address() == m.kSize - 2 * 8192 && def.slot_bytes() == 8192);
  odl::FlashIAPStorage rounded(5000);
  CHECK(rounded.begin(0x40000) && rounded.slot_bytes() == 8192);  // whole 4 KB sectors
  odl::FlashIAPStorage overlap(8192, 0x30000);
  CHECK(!overlap.begin(0x31000));  // the firmware image ends inside the slots
  CHECK(overlap.error() && strstr(overlap.error(), "firmware"));
  CHECK(!overlap.write(0, 0, g_record, 4));  // refused: nothing is written
  odl::FlashIAPStorage touching(8192, 0x30000);
  CHECK(touching.begin(0x30000));  // the image ends exactly where the slots start
  odl::FlashIAPStorage unaligned(8192, 0x30010);
  CHECK(!unaligned.begin(0x20000) && strstr(unaligned.error(), "aligned"));
  odl::FlashIAPStorage outside(8192, m.kSize - 8192);
  CHECK(!outside.begin(0x20000) && strstr(outside.error(), "outside"));
  odl::FlashIAPStorage huge(m.kSize);
  CHECK(!huge.begin(0));
  // writes must be whole program units inside a slot
  CHECK(def.begin(0x40000));
  CHECK(!def.write(0, 2, g_record, 4) && !def.write(0, 0, g_record, 6) && !def.write(1, 8190, g_record, 4));
}

// Cuts the power at every step of save(tag) starting from the current flash contents; after
// each cut a reboot must load `old_tag` or `tag`, and a following save must work.
static void cut_everywhere(uint8_t tag, int old_tag, long* points, long* old_seen, long* new_seen) {
  Nrf52FlashModel& m = Nrf52FlashModel::get();
  static uint8_t snapshot[Nrf52FlashModel::kSize];
  memcpy(snapshot, m.mem, sizeof(snapshot));
  m.power_on();
  CHECK(save(tag) == odl::kOk);
  const long steps = m.steps;
  CHECK(steps > (long)(kBlob / 4));  // every word programmed is a step
  for (long cut = 0; cut <= steps; ++cut) {
    for (uint32_t seed = 1; seed <= 2; ++seed) {
      memcpy(m.mem, snapshot, sizeof(snapshot));
      m.power_on();
      m.rng = seed * 2654435761u + (uint32_t)cut;
      m.budget = cut;
      const int st = save(tag);
      m.power_on();  // reboot
      const int got = load_tag();
      ++*points;
      CHECK(got == old_tag || got == tag);
      if (st == odl::kOk) CHECK(got == tag);  // a save that reported success holds
      if (got == old_tag) ++*old_seen;
      if (got == tag) ++*new_seen;
      if (got != old_tag && got != tag) printf("cut %ld seed %u: loaded %d\n", cut, seed, got);
    }
  }
  // the last state: the save completes after all; the flash keeps working after every cut
  memcpy(m.mem, snapshot, sizeof(snapshot));
  m.power_on();
  CHECK(save(tag) == odl::kOk && load_tag() == tag);
}

int main() {
  test_placement();
  long points = 0, old_seen = 0, new_seen = 0;
  Nrf52FlashModel& m = Nrf52FlashModel::get();
  memset(m.mem, 0xFF, sizeof(m.mem));
  cut_everywhere(1, 0, &points, &old_seen, &new_seen);  // first save on erased flash
  cut_everywhere(2, 1, &points, &old_seen, &new_seen);  // second save: the other slot
  cut_everywhere(3, 2, &points, &old_seen, &new_seen);  // third: erases the slot of record 1
  printf("FlashIAP model: %ld power cuts, old record loaded %ld, new %ld, anything else %ld\n", points, old_seen,
         new_seen, points - old_seen - new_seen);
  printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
