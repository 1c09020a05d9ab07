// ODLEngine.h - umbrella header of the ODLEngine Arduino library.
#ifndef ODLENGINE_H
#define ODLENGINE_H

#include "odl_types.h"
#include "odl_kernels.h"
#include "odl_head.h"
#include "odl_blob.h"
#include "odl_storage.h"
#include "odl_engine.h"
#include "odl_lpc.h"
#include "odl_mlp.h"
#if defined(ARDUINO_ARCH_MBED)
#include "nano33ble/odl_flash_iap.h"  // FlashIAPStorage: the internal flash (no IMU libraries needed)
#endif

#endif  // ODLENGINE_H
