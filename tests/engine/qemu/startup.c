/* Minimal Cortex-M4F startup for qemu-system-arm -M mps2-an386 (semihosting via rdimon).
 * The reset handler enables the FPU (CPACR bits 20-23) before any float instruction runs,
 * then enters newlib's _start (zeroes .bss, runs constructors, calls main, exits through
 * semihosting so qemu terminates with main's return code). */
#include <stdint.h>

extern void _start(void);
extern uint32_t __StackTop;

void Reset_Handler(void) __attribute__((naked, noreturn));
void Default_Handler(void);

void Reset_Handler(void) {
  __asm volatile(
      "ldr r0, =0xE000ED88\n"
      "ldr r1, [r0]\n"
      "orr r1, r1, #(0xF << 20)\n"
      "str r1, [r0]\n"
      "dsb\n"
      "isb\n"
      "b _start\n");
}

void Default_Handler(void) {
  for (;;) {
  }
}

__attribute__((section(".isr_vector"), used)) const void* const g_vectors[16] = {&__StackTop,
                                                                                 (const void*)Reset_Handler,
                                                                                 (const void*)Default_Handler,
                                                                                 (const void*)Default_Handler,
                                                                                 (const void*)Default_Handler,
                                                                                 (const void*)Default_Handler,
                                                                                 (const void*)Default_Handler,
                                                                                 0,
                                                                                 0,
                                                                                 0,
                                                                                 0,
                                                                                 (const void*)Default_Handler,
                                                                                 (const void*)Default_Handler,
                                                                                 0,
                                                                                 (const void*)Default_Handler,
                                                                                 (const void*)Default_Handler};
