// Instruction counter for qemu runs with `-icount shift=0` (1 ns of virtual time per guest
// instruction): the CMSDK APB timer 0 of mps2-an386 (0x40000000) runs at the 25 MHz system
// clock from virtual time, so one tick = 40 instructions. On the host build it reads 0.
#ifndef ODL_QEMU_CYCLES_H
#define ODL_QEMU_CYCLES_H
#include <stdint.h>

#if defined(__arm__)
#define ODL_TIMER0 ((volatile uint32_t*)0x40000000u)
static inline void counter_start(void) {
  ODL_TIMER0[0] = 0;            // CTRL: stop
  ODL_TIMER0[2] = 0xFFFFFFFFu;  // RELOAD
  ODL_TIMER0[1] = 0xFFFFFFFFu;  // VALUE
  ODL_TIMER0[0] = 1;            // CTRL: enable
}
static inline uint32_t counter_ticks(void) { return 0xFFFFFFFFu - ODL_TIMER0[1]; }
static const uint32_t kInstructionsPerTick = 40;
#else
static inline void counter_start(void) {}
static inline uint32_t counter_ticks(void) { return 0; }
static const uint32_t kInstructionsPerTick = 0;
#endif

#endif
