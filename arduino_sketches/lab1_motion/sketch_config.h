// sketch_config.h - GENERATED from odlkit.sketches by `python -m odlkit.export.sketch_headers lab1_motion`;
// do not edit (change the registry and run `make headers`). Build-time settings of the
// lab1_motion sketch, shared with the virtual board (arduino_sketches/virtual_board/main.cpp
// includes this same file).
// Lab 1: personalise a motion classifier on the board; the lab adds 'badminton' with ADDCLASS.
#ifndef LAB1_MOTION_SKETCH_CONFIG_H
#define LAB1_MOTION_SKETCH_CONFIG_H

#define ODL_SKETCH_NAME "lab1_motion"
#define ODL_FIRMWARE_VERSION "lab1_motion-0.1.0"
// Feature vectors kept in the on-device training store (64 floats each: 256 B); the
// board's private data set: it never leaves the board, only head weights do.
#define ODL_REPLAY_CAPACITY 200
// Bytes per storage slot for SAVE / LOAD (a record is the weights blob + 16 bytes, and the
// engine-state extension of odl_engine.h when a plan or the int8 head was trained).
#define ODL_STORAGE_SLOT_BYTES 24576
// Backbone training plans (TRAIN plan=bias|sparse, odl_backprop.h): the plan buffer's bytes and
// the int16 input windows kept of the first stored samples. The .ino builds the engine with
// them; the virtual board does with Board.virtual(plans=True), its default build is head-only.
#define ODL_SKETCH_PLAN_BYTES 65536
#define ODL_SKETCH_PLAN_WINDOWS 64
// The int8 path (TRAIN q=int8 qas=1|0, odl_int8.h): the full-integer backbone of
// odl_int8_model_data.h, int8 features of every stored sample, an int8 head trained with or
// without quantization-aware scaling. The virtual board builds it with Board.virtual(int8=True).
#define ODL_SKETCH_INT8 1
// 1: print IMU samples (ax,ay,az,gx,gy,gz at 25 Hz) from boot until the first byte arrives,
// for `edge-impulse-data-forwarder --frequency 25`, which cannot send a STREAM command.
// 0 (default): quiet until the host sends a command (STREAM s=... streams on request).
#ifndef ODL_STREAM_AT_BOOT
#define ODL_STREAM_AT_BOOT 0
#endif

#endif  // LAB1_MOTION_SKETCH_CONFIG_H
