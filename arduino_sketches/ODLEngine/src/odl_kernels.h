// odl_kernels.h - float kernels of the frozen backbone and the layer-list runner.
// Activations are time-major: x[t * channels + c]. Weights use Keras layouts.
#ifndef ODL_KERNELS_H
#define ODL_KERNELS_H

#include <stdint.h>

#include "odl_types.h"

namespace odl {

// y (T-K+1, Cout) = b + sum_{j<K, i<Cin} x[t+j][i] * W[j][i][o]
void conv1d_valid(const float* x, uint16_t T, uint16_t Cin, const float* W, const float* b,
                  uint16_t K, uint16_t Cout, float* y);
// y (T-K+1, C) = b[c] + sum_{j<K} x[t+j][c] * W[j][c]
void depthwise_conv1d_valid(const float* x, uint16_t T, uint16_t C, const float* W,
                            const float* b, uint16_t K, float* y);
// y (out) = b + x (in) . W (in, out)
void dense(const float* x, uint16_t in, const float* W, const float* b, uint16_t out, float* y);
void relu_inplace(float* x, uint32_t n);
// y (T / pool, C): max over non-overlapping windows, remainder dropped (Keras 'valid')
void maxpool1d(const float* x, uint16_t T, uint16_t C, uint16_t pool, float* y);
// y (C): mean over T
void global_avg_pool1d(const float* x, uint16_t T, uint16_t C, float* y);

// Checks layer shapes chain from (input_len, input_channels) to (1, feature_dim)
// and that every activation fits in half of an arena of arena_floats.
Status validate_model(const ModelSpec& spec, uint32_t arena_floats);

// Normalizes one raw window ((x - mean) / std per channel) and runs the layers,
// ping-ponging between the two halves of arena. Writes spec.feature_dim floats.
Status run_backbone(const ModelSpec& spec, const float* raw_window, float* arena,
                    uint32_t arena_floats, float* features);

}  // namespace odl

#endif  // ODL_KERNELS_H
