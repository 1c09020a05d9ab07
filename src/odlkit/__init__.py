"""odlkit: the helper package of the On-Device Learning course and lab kit.

Every notebook imports it; the logic lives here so notebooks stay short and readable.
Submodules are imported on demand (``from odlkit import data, models``) so that light ones,
such as ``odlkit.board`` and ``odlkit.data``, never pull in TensorFlow.
"""

__version__ = "0.1.0"

from odlkit import _quiet

# Before any submodule imports TensorFlow: its C++ INFO/WARNING logs stay out of the notebook
# (see odlkit._quiet for what else is kept quiet, and only during the kit's own calls).
_quiet.set_environment()
