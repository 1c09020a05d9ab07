"""Drive an ODLEngine sketch on a real Arduino Nano 33 BLE Sense or on the virtual board.

    from odlkit.board import Board
    board = Board.serial()                          # real board, auto-detected on USB
    board = Board.virtual(dataset="basic_motions")  # same C++ compiled for this computer

Methods (same for both): ``info``, ``record``, ``add_class``, ``train``, ``predict``,
``evaluate``, ``get_weights`` / ``set_weights`` (``odlkit.weights.HeadWeights``),
``get_features``, ``save``, ``load``, ``reset``, ``stream``, ``close`` (also a context
manager). Errors: :class:`BoardError` (carries the board's code and message),
:class:`BoardNotFoundError`, :class:`BoardTimeout`. Needs numpy + pyserial only; the
protocol is ``arduino_sketches/PROTOCOL.md``.
"""

from odlkit.board.client import (
    Board,
    BoardError,
    BoardNotFoundError,
    BoardTimeout,
    Evaluation,
    Prediction,
    TrainResult,
    find_serial_port,
)
from odlkit.board.protocol import PROTOCOL_VERSION

__all__ = [
    "Board",
    "BoardError",
    "BoardNotFoundError",
    "BoardTimeout",
    "Evaluation",
    "Prediction",
    "TrainResult",
    "find_serial_port",
    "PROTOCOL_VERSION",
]
