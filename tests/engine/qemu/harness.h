// harness.h - what the engine's command-line test tools (tests/engine/*_cli.cpp) and the qemu
// benchmarks (tests/engine/qemu/bench_*.cpp) share: the instruction counter (cycles.h), its
// calibration line, and reading exact binary input from stdin.
#ifndef ODL_TEST_HARNESS_H
#define ODL_TEST_HARNESS_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cycles.h"

// Timer ticks of a loop of exactly 2,000,000 instructions (0 on the host, where the counter
// reads 0). The benchmarks print it as "calibration_ticks N"; the Python side divides.
static inline uint32_t calibration_ticks(void) {
#if defined(__arm__)
  counter_start();
  uint32_t n = 1000000;
  __asm volatile("1: subs %0, %0, #1\n bne 1b\n" : "+r"(n) : : "cc");
  return counter_ticks();
#else
  return 0;
#endif
}
static inline void print_calibration(void) { printf("calibration_ticks %lu\n", (unsigned long)calibration_ticks()); }

// Reads exactly n bytes from stdin or exits with status 2 ("short input" on stderr).
static inline void read_exact(void* p, size_t n) {
  if (fread(p, 1, n, stdin) != n) {
    fprintf(stderr, "short input\n");
    exit(2);
  }
}

#endif  // ODL_TEST_HARNESS_H
