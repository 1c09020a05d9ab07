// odl_rng.h - xorshift32, the engine's only random number generator.
// odlkit tests re-implement it in numpy to reproduce the data order exactly.
#ifndef ODL_RNG_H
#define ODL_RNG_H

#include <stdint.h>

namespace odl {

inline uint32_t xorshift32(uint32_t* state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

// Seeds used by the store: shuffle = seed * 2654435761 + 1, reservoir =
// seed ^ 0xA5A5A5A5 (a zero state is replaced by 1: xorshift32 would stay 0).
inline uint32_t rng_seed_shuffle(uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1u;
  return s ? s : 1u;
}
inline uint32_t rng_seed_reservoir(uint32_t seed) {
  uint32_t s = seed ^ 0xA5A5A5A5u;
  return s ? s : 1u;
}

}  // namespace odl

#endif  // ODL_RNG_H
