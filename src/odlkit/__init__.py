"""odlkit: the helper package of the On-Device Learning course and lab kit.

Every notebook imports it; the logic lives here so notebooks stay short and readable.
Submodules are imported on demand (``from odlkit import data, models``) so that light ones,
such as ``odlkit.board`` and ``odlkit.data``, never pull in TensorFlow.
"""

__version__ = "0.1.0"
