// lab2_microphone - a speaker classifier trained from scratch on the board (Lab 2).
//
// No pretrained backbone: the board records an utterance with its PDM microphone (16 kHz mono),
// computes LPC cepstra frame by frame (10 kHz after resampling, 25.6 ms frames every 6.4 ms,
// order 12: the settings of the JapaneseVowels data set), keeps only the frames its energy gate
// passes, summarizes the utterance (mean + std of each coefficient), learns an input
// standardizer from what it records and trains a two-layer network (ODL_HIDDEN hidden units)
// end to end on the device. The host drives it with the protocol in arduino_sketches/PROTOCOL.md
// (odlkit.board.Board.serial()). Build settings: sketch_config.h (generated from odlkit.sketches).
#include <Arduino.h>
#include <PDM.h>  // the Nano 33 BLE core's PDM library (MP34DT05 microphone)
#include <ODLEngine.h>
#include <odl_nano33_audio_app.h>  // audio engine + PDM microphone + flash + serial protocol

#include "sketch_config.h"

static const char* const kClassNames[] = ODL_CLASS_NAMES;
typedef odl::AudioEngine<ODL_MAX_FRAMES, ODL_HIDDEN, ODL_MAX_CLASSES, ODL_REPLAY_CAPACITY> EngineT;
static odl::Nano33AudioApp<EngineT> app(ODL_STORAGE_SLOT_BYTES);

void setup() { app.setup(kClassNames, ODL_NUM_CLASSES, ODL_FIRMWARE_VERSION); }

void loop() { app.loop(); }
