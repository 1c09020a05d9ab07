// sketch_config.h - build-time settings of the lab3_federated sketch, shared with the
// virtual board (arduino_sketches/virtual_board/main.cpp includes this same file).
#ifndef LAB3_SKETCH_CONFIG_H
#define LAB3_SKETCH_CONFIG_H

#define ODL_SKETCH_NAME "lab3_federated"
#define ODL_FIRMWARE_VERSION "lab3_federated-0.1.0"
// Feature vectors kept in the on-device training store (64 floats each: 256 B). In Lab 3
// this is the board's private data set: it never leaves the board, only head weights do.
#define ODL_REPLAY_CAPACITY 200
// Bytes per storage slot for SAVE / LOAD (a record is the weights blob + 16 bytes).
#define ODL_STORAGE_SLOT_BYTES 4096
// 1: print IMU samples at 25 Hz from boot until the first byte arrives (Edge Impulse
// data forwarder). 0 (default): quiet until the host sends a command.
#ifndef ODL_STREAM_AT_BOOT
#define ODL_STREAM_AT_BOOT 0
#endif

#endif  // LAB3_SKETCH_CONFIG_H
