"""Export models for the board: ``.tflite`` (float32 / int8) and C headers.

* :mod:`odlkit.export.tflite`: Keras -> ``.tflite``, run it with LiteRT or TensorFlow Lite
  Micro, and the bytes as a C array.
* :mod:`odlkit.export.c_header`: the backbone's layer list and float weights as the
  ``odl_model_data.h`` header the Arduino sketches compile in.
"""

from .tflite import ExportError, tflite_predict, tflite_to_c_array, tflm_predict, to_tflite

__all__ = ["ExportError", "tflite_predict", "tflite_to_c_array", "tflm_predict", "to_tflite"]
