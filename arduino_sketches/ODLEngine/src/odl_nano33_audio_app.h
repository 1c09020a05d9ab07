// odl_nano33_audio_app.h - the Arduino Nano 33 BLE Sense Lab 2 port (microphone) lives in
// nano33ble/ beside the portable core; sketches include it by this name.
#include "nano33ble/odl_nano33_audio_app.h"
