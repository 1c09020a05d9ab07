// sketch_config.h - GENERATED from odlkit.sketches by `python -m odlkit.export.sketch_headers lab2_microphone`;
// do not edit (change the registry and run `make headers`). Build-time settings of the
// lab2_microphone sketch, shared with the virtual board (arduino_sketches/virtual_board/main.cpp
// includes this same file).
// Lab 2: speech features (LPC cepstra) from the microphone and a two-layer network trained from scratch on the board.
#ifndef LAB2_MICROPHONE_SKETCH_CONFIG_H
#define LAB2_MICROPHONE_SKETCH_CONFIG_H

#define ODL_SKETCH_NAME "lab2_microphone"
#define ODL_FIRMWARE_VERSION "lab2_microphone-0.1.0"
// Feature vectors kept in the on-device training store (64 floats each: 256 B); the
// board's private data set: it never leaves the board, only head weights do.
#define ODL_REPLAY_CAPACITY 512
// Bytes per storage slot for SAVE / LOAD (a record is the weights blob + 16 bytes, and the
// engine-state extension of odl_engine.h when a plan or the int8 head was trained).
#define ODL_STORAGE_SLOT_BYTES 8192
// Lab 2: no backbone (no odl_model_data.h). Windows are utterances of LPC cepstra.
#define ODL_SKETCH_AUDIO 1
// Hidden units of the two-layer network, and frames kept per utterance (6.4 ms each).
#define ODL_HIDDEN 32
#define ODL_MAX_FRAMES 32
#define ODL_NUM_CEPS 12
#define ODL_MAX_CLASSES 12
#define ODL_NUM_CLASSES 9
#define ODL_CLASS_NAMES {"speaker1", "speaker2", "speaker3", "speaker4", "speaker5", "speaker6", "speaker7", "speaker8", "speaker9"}
// 1: print IMU samples (ax,ay,az,gx,gy,gz at 25 Hz) from boot until the first byte arrives,
// for `edge-impulse-data-forwarder --frequency 25`, which cannot send a STREAM command.
// 0 (default): quiet until the host sends a command (STREAM s=... streams on request).
#ifndef ODL_STREAM_AT_BOOT
#define ODL_STREAM_AT_BOOT 0
#endif

#endif  // LAB2_MICROPHONE_SKETCH_CONFIG_H
