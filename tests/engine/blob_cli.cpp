// Weights-blob driver for tests/test_weights.py (no model needed).
// Compiled with -DFD=<feature_dim> -DMC=<max_classes>.
//   blob_cli make NC SEED OUT.blob      deterministic head (xorshift32 values) -> blob
//   blob_cli roundtrip IN.blob OUT.blob decode then encode; prints the status, exit 3 if rejected
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ODLEngine.h>
#include "odl_rng.h"

static float W[MC * FD], b[MC], vW[MC * FD], vb[MC], gW[MC * FD], gb[MC], probs[MC];
static char names[MC][odl::kClassNameBytes];
static uint8_t buf[odl::blob_size_for(MC, FD) + 64];

int main(int argc, char** argv) {
  odl::HeadView h = {FD, MC, 0, W, b, vW, vb, gW, gb, probs, names};
  if (argc == 5 && !strcmp(argv[1], "make")) {
    const int nc = atoi(argv[2]);
    uint32_t rng = (uint32_t)strtoul(argv[3], nullptr, 10) | 1u;
    for (int c = 0; c < nc; ++c) {
      char name[24];
      snprintf(name, sizeof(name), "class_%d", c);
      if (odl::head_add_class(h, name) != c) return 1;
    }
    // value = (r % 20001 - 10000) / 4096 : exactly representable, easy to recompute in Python
    for (int i = 0; i < nc * FD; ++i) W[i] = (float)((int)(odl::xorshift32(&rng) % 20001) - 10000) / 4096.0f;
    for (int c = 0; c < nc; ++c) b[c] = (float)((int)(odl::xorshift32(&rng) % 20001) - 10000) / 4096.0f;
    uint32_t n = 0;
    if (odl::blob_encode(h, buf, sizeof(buf), &n) != odl::kOk) return 1;
    FILE* f = fopen(argv[4], "wb");
    return f && fwrite(buf, 1, n, f) == n && fclose(f) == 0 ? 0 : 1;
  }
  if (argc == 4 && !strcmp(argv[1], "roundtrip")) {
    FILE* f = fopen(argv[2], "rb");
    if (!f) return 1;
    const size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    const int st = odl::blob_decode(h, buf, (uint32_t)n);
    printf("status %d %s\n", st, odl::status_str(st));
    if (st != odl::kOk) return 3;
    uint32_t m = 0;
    if (odl::blob_encode(h, buf, sizeof(buf), &m) != odl::kOk) return 1;
    f = fopen(argv[3], "wb");
    return f && fwrite(buf, 1, m, f) == m && fclose(f) == 0 ? 0 : 1;
  }
  fprintf(stderr, "usage: blob_cli make NC SEED OUT | roundtrip IN OUT\n");
  return 2;
}
