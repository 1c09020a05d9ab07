// odl_numerics.h - the library's float arithmetic does not depend on the flags it is built with.
//
// The Arduino IDE builds the Nano 33 BLE with GCC's default -ffp-contract=fast, which fuses
// `a * b + c` into one VFMA (one rounding instead of two); the host and qemu builds then give
// different features and weights from the board. Every library header and source brackets its
// code with ODL_NUMERICS_BEGIN / ODL_NUMERICS_END, which turns contraction off for the library's
// own functions (templates and inline functions included) and restores the user's setting after:
//   GCC   : #pragma GCC optimize("fp-contract=off") between push_options / pop_options
//           (GCC ignores #pragma STDC FP_CONTRACT in C++). Multiply-accumulate is then VMLA,
//           the *chained* (non-fused, two roundings) instruction, bit-identical to VMUL+VADD.
//   clang : #pragma STDC FP_CONTRACT OFF ... DEFAULT. clang ignores every contraction pragma
//           under an explicit -ffp-contract=fast: host builds pass -ffp-contract=off as well
//           (odlkit/board/cxxflags.py).
// tests/test_qemu.py checks the result: no vfma/vfms/vfnma/vfnms in the library's objects built
// with the board's flags, and the board-flag build under qemu bit-identical with the host.
#ifndef ODL_NUMERICS_H
#define ODL_NUMERICS_H

#if defined(ODL_CONTRACTION_FROM_FLAGS)
// Leave contraction to the build flags (tests/test_qemu.py uses it to show the pragmas matter).
#define ODL_NUMERICS_BEGIN
#define ODL_NUMERICS_END
#elif defined(__clang__)
#define ODL_NUMERICS_BEGIN _Pragma("STDC FP_CONTRACT OFF")
#define ODL_NUMERICS_END _Pragma("STDC FP_CONTRACT DEFAULT")
#elif defined(__GNUC__)
#define ODL_NUMERICS_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define ODL_NUMERICS_END _Pragma("GCC pop_options")
#else
// Other compilers: build with contraction off (e.g. -ffp-contract=off / /fp:precise).
#define ODL_NUMERICS_BEGIN
#define ODL_NUMERICS_END
#endif

#endif  // ODL_NUMERICS_H
