"""The registry of Arduino sketches: one place for what each sketch is (stdlib only).

Everything that needs to know a sketch reads it from here: the header generator
(:mod:`odlkit.export.sketch_headers` writes each sketch's ``sketch_config.h`` and
``odl_model_data.h`` from it), ``make headers`` (it loops over :data:`SKETCHES`),
``Board.virtual`` (its default sketch and dataset, the folder it compiles), the labs
(:mod:`odlkit.labs.lab3` federates the ``lab3_federated`` sketch) and error messages that
tell you which firmware to flash.

Adding a sketch: add a :class:`Sketch` to :data:`SKETCHES`, create the folder
``arduino_sketches/<name>/`` with its ``<name>.ino`` (and a README), then ``make headers``.
"""

from __future__ import annotations

from dataclasses import dataclass

# ODLEngine's build-time limits the generated headers use unless a sketch says otherwise.
DEFAULT_MAX_CLASSES = 8
DEFAULT_STORAGE_SLOT_BYTES = 4096


@dataclass(frozen=True)
class Sketch:
    """One Arduino sketch of the course (a folder ``arduino_sketches/<name>/``)."""

    name: str                       # folder and .ino name; also ODL_SKETCH_NAME and the firmware prefix
    classes: tuple[str, ...]        # the initial head's classes, in order (zero weights: learned on the board)
    capacity: int                   # feature vectors in the on-device training store (ODL_REPLAY_CAPACITY)
    dataset: str = "basic_motions"  # the odlkit.data IMU dataset the virtual board replays by default
    version: str = "0.1.0"          # firmware version (HELLO reports "<name>-<version>")
    max_classes: int = DEFAULT_MAX_CLASSES        # head rows, for classes added on the board (ADDCLASS)
    storage_slot_bytes: int = DEFAULT_STORAGE_SLOT_BYTES  # bytes per SAVE/LOAD slot (weights blob + 16)
    purpose: str = ""               # one line for the generated header's comment
    # "imu": a frozen backbone on IMU windows + a trained head (odl_model_data.h); "audio": Lab 2,
    # LPC cepstra from the microphone and a two-layer network trained from scratch (no backbone)
    kind: str = "imu"
    hidden: int = 0                 # audio: hidden units of the network (ODL_HIDDEN, a build-time size)
    max_frames: int = 0             # audio: frames kept per utterance (ODL_MAX_FRAMES)
    # imu: backbone training plans (TRAIN plan=bias|sparse) in the board's firmware. plan_bytes is
    # the engine's plan buffer (RAM copies of the parameters a plan updates, their gradients and
    # the activations its backward pass keeps; odlkit.tiny.memory.engine_plan_memory predicts each
    # plan's need), plan_windows the int16 input windows kept of the first stored samples (what
    # the backbone is trained on). 0/0: head-only firmware.
    plan_bytes: int = 0
    plan_windows: int = 0
    # imu: the int8 path (TRAIN q=int8, odl_int8.h) in the firmware: the full-integer backbone
    # (odl_int8_model_data.h), int8 features of every stored sample and an int8 head
    int8: bool = False

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"sketch name {self.name!r} must be a C/Python identifier (it names the .ino file)")
        if not 1 <= len(self.classes) <= self.max_classes:
            raise ValueError(f"sketch {self.name}: {len(self.classes)} classes, room for 1..{self.max_classes}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"sketch {self.name}: class names must be unique, got {self.classes}")
        if self.capacity < 1:
            raise ValueError(f"sketch {self.name}: capacity must be >= 1, got {self.capacity}")
        if self.kind not in ("imu", "audio"):
            raise ValueError(f"sketch {self.name}: kind must be 'imu' or 'audio', got {self.kind!r}")
        if self.kind == "audio" and not (1 <= self.hidden <= 256 and 1 <= self.max_frames <= 64):
            raise ValueError(f"sketch {self.name}: an audio sketch needs hidden in 1..256 and max_frames in 1..64")
        if self.plan_bytes < 0 or self.plan_windows < 0 or (self.plan_bytes == 0) != (self.plan_windows == 0):
            raise ValueError(f"sketch {self.name}: plan_bytes and plan_windows go together (both > 0, or both 0 "
                             f"for a head-only firmware), got {self.plan_bytes} and {self.plan_windows}")
        if self.plan_bytes and self.kind != "imu":
            raise ValueError(f"sketch {self.name}: training plans need a backbone (kind 'imu')")
        if self.int8 and self.kind != "imu":
            raise ValueError(f"sketch {self.name}: the int8 path needs a backbone (kind 'imu')")

    @property
    def firmware(self) -> str:
        """What the board reports in HELLO (``fw``) and ``INFO``: ``<name>-<version>``."""
        return f"{self.name}-{self.version}"

    @property
    def folder(self) -> str:
        """The sketch folder, relative to the repository (what to open in the Arduino IDE)."""
        return f"arduino_sketches/{self.name}"


SKETCHES: dict[str, Sketch] = {s.name: s for s in (
    # The plan buffer holds bias-only (2.7 KB) and sparse update of the last layer (52 KB) for the
    # course's backbone; k = 2 (127 KB) would not fit beside the mbed core (the lab shows why).
    # RAM of the real build: arduino_sketches/lab1_motion/README.md (extras/compile_check.py).
    # The int8 path adds 16.0 KB (int8 features of the 200 stored samples, the int8 head and its
    # latent copy); the real build still fits (arduino_sketches/lab1_motion/README.md).
    # SAVE keeps what a plan trained: a 24 KB slot holds the head, sparse update of the last layer's
    # tensors (17 KB) and the int8 head (2.7 KB) of odl_engine.h's record.
    Sketch("lab1_motion", ("standing", "walking", "running"), capacity=200, plan_bytes=65536, plan_windows=64,
           int8=True, storage_slot_bytes=24576,
           purpose="Lab 1: personalise a motion classifier on the board; the lab adds 'badminton' with ADDCLASS"),
    # Every board of Lab 3 holds all four classes, so FedAvg averages the same rows on every board.
    Sketch("lab3_federated", ("standing", "walking", "running", "badminton"), capacity=200,
           purpose="Lab 3: one client of federated averaging; its training store never leaves the board"),
    # The virtual board replays JapaneseVowels (9 speakers); a team on a real board records its own
    # voices (RECORD <name> add=1 or ADDCLASS): room for 12 classes in all.
    Sketch("lab2_microphone", tuple(f"speaker{i}" for i in range(1, 10)), capacity=512, dataset="japanese_vowels",
           max_classes=12, storage_slot_bytes=8192, kind="audio", hidden=32, max_frames=32,
           purpose="Lab 2: speech features (LPC cepstra) from the microphone and a two-layer network trained "
                   "from scratch on the board"),
)}

DEFAULT_SKETCH = "lab1_motion"
"""The sketch ``Board.virtual()`` runs when none is named, and the one to flash first."""


def get_sketch(name: str) -> Sketch:
    """The registered sketch ``name``; a clear error listing the known ones otherwise."""
    try:
        return SKETCHES[name]
    except KeyError:
        raise ValueError(f"unknown sketch {name!r}; registered sketches: {sorted(SKETCHES)} "
                         "(add one to odlkit.sketches.SKETCHES)") from None
