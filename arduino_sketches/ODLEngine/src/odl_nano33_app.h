// odl_nano33_app.h - the Arduino Nano 33 BLE (Sense) port lives in nano33ble/ beside the portable
// core; sketches include it by this name.
#include "nano33ble/odl_nano33_app.h"
