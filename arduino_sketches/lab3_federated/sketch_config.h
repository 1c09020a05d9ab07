// sketch_config.h - GENERATED from odlkit.sketches by `python -m odlkit.export.sketch_headers lab3_federated`;
// do not edit (change the registry and run `make headers`). Build-time settings of the
// lab3_federated sketch, shared with the virtual board (arduino_sketches/virtual_board/main.cpp
// includes this same file).
// Lab 3: one client of federated averaging; its training store never leaves the board.
#ifndef LAB3_FEDERATED_SKETCH_CONFIG_H
#define LAB3_FEDERATED_SKETCH_CONFIG_H

#define ODL_SKETCH_NAME "lab3_federated"
#define ODL_FIRMWARE_VERSION "lab3_federated-0.1.0"
// Feature vectors kept in the on-device training store (64 floats each: 256 B); the
// board's private data set: it never leaves the board, only head weights do.
#define ODL_REPLAY_CAPACITY 200
// Bytes per storage slot for SAVE / LOAD (a record is the weights blob + 16 bytes, and the
// engine-state extension of odl_engine.h when a plan or the int8 head was trained).
#define ODL_STORAGE_SLOT_BYTES 4096
// 1: print IMU samples (ax,ay,az,gx,gy,gz at 25 Hz) from boot until the first byte arrives,
// for `edge-impulse-data-forwarder --frequency 25`, which cannot send a STREAM command.
// 0 (default): quiet until the host sends a command (STREAM s=... streams on request).
#ifndef ODL_STREAM_AT_BOOT
#define ODL_STREAM_AT_BOOT 0
#endif

#endif  // LAB3_FEDERATED_SKETCH_CONFIG_H
