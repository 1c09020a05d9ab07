"""``Board``: drive an ODLEngine sketch (real Nano 33 BLE Sense or the virtual board).

Both kinds speak the same protocol (``arduino_sketches/PROTOCOL.md``) and offer the same
methods; only the constructor differs::

    from odlkit.board import Board
    with Board.virtual(dataset="basic_motions") as board:   # or Board.serial()
        board.add_class("badminton")
        for name in ["standing", "walking", "running", "badminton"]:
            board.record(name, n=5)
        result = board.train(epochs=20, lr=0.05)
        print(board.evaluate().accuracy, board.predict("walking").name)
        head = board.get_weights()                          # odlkit.weights.HeadWeights

Every call has a timeout (an inactivity timeout: progress events extend it); a board error
reply becomes :class:`BoardError` with the board's message. numpy + pyserial only.
"""

from __future__ import annotations

import base64
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from odlkit import weights as weights_mod
from odlkit.board.protocol import (
    CHUNK_BYTES,
    ERROR_NAMES,
    FRAMING_ERRORS,
    MAX_SEQ,
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    encode_frame,
    parse_frame,
    valid_class_name,
)
from odlkit.board.transport import ProcessTransport, SerialTransport, TransportClosed
from odlkit.sketches import DEFAULT_SKETCH, get_sketch

ARDUINO_VID = 0x2341  # Arduino SA USB vendor id (Nano 33 BLE / BLE Sense Rev1 and Rev2)
BOOTLOADER_PIDS = {0x005A}  # Nano 33 BLE after a double reset (the sketch runs as 0x805A)
RECORD_SECONDS_PER_WINDOW = 2.0  # 50 samples at 25 Hz on the real board
READ_ONLY = {"HELLO", "INFO", "GETW", "GETF", "EVAL"}
# The virtual board's build for backbone training plans: the Lab 1 firmware's plan buffer (bias-only,
# or sparse update of the last layer: 52 KB for the course's backbone) and int16 windows of the
# first stored samples, from the sketch registry (odlkit.sketches); see odl_backprop.h.
PLAN_BUILD_FLAGS = [f"-DODL_PLAN_BYTES={get_sketch(DEFAULT_SKETCH).plan_bytes}",
                    f"-DODL_WINDOW_CAPACITY={get_sketch(DEFAULT_SKETCH).plan_windows}"]
# The virtual board's build with the int8 path (TRAIN q=int8) of a sketch that ships it (odlkit.sketches: int8).
INT8_BUILD_FLAGS = ["-DODL_INT8=1"]
FRAMING_GRACE_S = 1.0  # after a seq-0 framing error, how long our own reply may still take


class BoardError(RuntimeError):
    """The board answered with an error (``code``, ``name``, board ``message``) or did not answer."""

    def __init__(self, message: str, code: int = 0, command: str = "") -> None:
        self.code = code
        self.name = ERROR_NAMES.get(code, "")
        self.command = command
        self.board_message = message
        prefix = f"{command}: " if command else ""
        tag = f"board error {code} ({self.name}): " if code else ""
        super().__init__(f"{prefix}{tag}{message}")


class BoardNotFoundError(BoardError):
    """No board on any serial port."""


class BoardTimeout(BoardError):
    """No final reply in time."""


@dataclass
class TrainResult:
    epochs: int
    loss: float
    accuracy: float
    train_us: int
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, acc


@dataclass
class Prediction:
    label: int
    name: str
    confidence: float
    probabilities: np.ndarray
    forward_us: int
    head_us: int
    truth: str | None = None  # virtual board: the class of the replayed recording


@dataclass
class LpcFrames:
    """Frames the board's audio front end analysed (``Board.lpc``)."""

    index: np.ndarray  # (n,) frame numbers from the start of the audio
    ceps: np.ndarray  # (n, 12) float32 LPC cepstra c_1..c_12
    energy_db: np.ndarray  # (n,) mean square re full scale
    voiced: np.ndarray  # (n,) bool: passed the energy gate
    lpc_us: int  # the last frame's analysis time on the board


@dataclass
class Evaluation:
    n: int
    correct: int
    accuracy: float
    loss: float
    confusion: np.ndarray  # (classes, classes), rows = true class


def _parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


class Board:
    """A connection to a board running an ODLEngine sketch. Build with :meth:`serial` or :meth:`virtual`.

    Attributes after connecting: ``hello`` (dict of the HELLO reply: proto, fw, board, dim,
    classes, max, win, ch, rate), ``kind`` ("serial" or "virtual"), ``corrupted_frames``
    (reply frames dropped because their CRC failed), ``log`` (recent non-frame lines).
    """

    def __init__(self, transport, kind: str, timeout: float = 5.0, connect_attempts: int = 3) -> None:
        self._t = transport
        self.kind = kind
        self.timeout = float(timeout)
        # a random first seq: stale replies of an earlier session cannot match our requests
        self._seq = random.SystemRandom().randrange(1, MAX_SEQ // 2)
        self._closed = False
        self.corrupted_frames = 0
        self.log: deque[str] = deque(maxlen=200)
        self.hello: dict = {}
        try:
            self._connect(connect_attempts)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ constructors
    @classmethod
    def serial(cls, port: str | None = None, baudrate: int = 115200, timeout: float = 5.0) -> Board:
        """Connect to a Nano 33 BLE (Sense) running an ODLEngine sketch over USB serial.

        port: e.g. "/dev/ttyACM0" or "COM5"; None auto-detects the Arduino (USB VID 0x2341).
        """
        if port is None:
            port = find_serial_port()
        return cls(SerialTransport(port, baudrate), "serial", timeout=timeout)

    @classmethod
    def virtual(
        cls,
        dataset=None,
        sketch: str = DEFAULT_SKETCH,
        seed: int = 0,
        test_size: float = 0.25,
        predict_dataset=None,
        storage: str | Path | None = None,
        timeout: float = 10.0,
        plans: bool = False,
        plan_bytes: int | None = None,
        int8: bool = False,
    ) -> Board:
        """Start the virtual board: the sketch's own C++ compiled for this computer.

        sketch: a registered sketch (:mod:`odlkit.sketches`). dataset (default: the sketch's,
        ``basic_motions``): name of an IMU dataset of ``odlkit.data`` (split by recording into the
        windows RECORD plays back and held-out windows PREDICT plays back), or an
        ``odlkit.data.Dataset`` of (n, 50, 6) windows (then ``predict_dataset`` gives the
        held-out windows; default the same). storage: a file that keeps SAVE'd weights across
        restarts (default: RAM only, lost on close). seed: the replay order and the split;
        the engine gets seed + 1 (its xorshift generators need a non-zero seed), so the
        default ``seed=0`` trains exactly like a real board (engine seed 1): compare with
        ``odlkit.head.Head.fit(..., order="shuffle", seed=1)``.
        The first call compiles the C++ (a few seconds, cached under ``build/virtual_board``).

        Lab 2 (``sketch="lab2_microphone"``, default dataset ``japanese_vowels``): the sensor replays
        utterances of LPC cepstra (7-29 frames each); RECORD plays the data set's train split (30
        utterances per speaker, in a seeded order, wrapping around), PREDICT its test split, which
        was recorded on other occasions (``test_size`` is not used). A ``Dataset`` whose ``X`` is a
        list of (frames, 12) arrays works too.

        plans (Lab 1 sketches): build the engine with a plan buffer and a window store (:data:`PLAN_BUILD_FLAGS`)
        so that ``train(plan="bias" | "sparse")`` trains the backbone too. plan_bytes (with plans): a
        plan buffer of this size instead of the Lab 1 firmware's, a what-if build for plans that do
        not fit the real board (``odlkit.labs.lab1.plan_comparison``).

        int8 (sketches registered with ``int8=True``, Lab 1): build the engine with the int8 path
        (:data:`INT8_BUILD_FLAGS`, as the Lab 1 firmware is), so that ``train(q="int8", qas=...)``
        trains an int8 head on the full-integer backbone's features.
        """
        from odlkit.board.virtual import (
            BUILD_DIR,
            build_virtual_board,
            dataset_replay,
            utterance_replay,
            write_replay,
        )

        if plan_bytes is not None and (not plans or int(plan_bytes) <= 0):
            raise ValueError(f"plan_bytes goes with plans=True and must be > 0, got {plan_bytes!r}")
        spec = get_sketch(sketch)
        if int8 and not spec.int8:
            raise ValueError(f"sketch {sketch!r} has no int8 path (odlkit.sketches: int8=False)")
        flags = PLAN_BUILD_FLAGS if plans else None
        if flags and plan_bytes is not None:
            flags = [f"-DODL_PLAN_BYTES={int(plan_bytes)}", *(f for f in flags if "ODL_PLAN_BYTES" not in f)]
        if int8:
            flags = [*(flags or []), *INT8_BUILD_FLAGS]
        exe = build_virtual_board(sketch, extra_flags=flags)
        if dataset is None:
            dataset = spec.dataset
        if spec.kind == "audio":
            # Lab 2: utterances of LPC cepstra (the data set's train split for RECORD, test for PREDICT)
            if isinstance(dataset, str):
                replay = utterance_replay(dataset, seed=seed, max_len=spec.max_frames)
            else:
                import hashlib

                h = hashlib.sha256(np.asarray(dataset.y).tobytes())
                for x in dataset.X:
                    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
                replay = write_replay(BUILD_DIR / "replay" / f"custom-utt-{h.hexdigest()[:12]}-s{seed}.txt", dataset,
                                      predict_dataset, rate_hz=156, seed=seed, max_len=spec.max_frames)
        elif isinstance(dataset, str):
            replay = dataset_replay(dataset, test_size=test_size, seed=seed)
        else:
            import hashlib

            X = np.ascontiguousarray(np.asarray(dataset.X, np.float32))
            key = hashlib.sha256(X.tobytes() + np.asarray(dataset.y).tobytes()).hexdigest()[:12]
            replay = write_replay(BUILD_DIR / "replay" / f"custom-{key}-s{seed}.txt", dataset, predict_dataset, seed=seed)
        argv = [str(exe), "--replay", str(replay), "--seed", str(int(seed) + 1)]
        if storage is not None:
            argv += ["--storage", str(storage)]
        return cls(ProcessTransport(argv), "virtual", timeout=timeout)

    # ------------------------------------------------------------------ plumbing
    def _connect(self, attempts: int) -> None:
        last = None
        for _ in range(max(1, attempts)):
            try:
                f = self._request("HELLO", timeout=min(self.timeout, 3.0), retry=False)
                break
            except BoardTimeout as e:  # board still booting, or not our firmware
                last = e
            except BoardError as e:  # noise on the line damaged the HELLO: try again
                if e.code not in FRAMING_ERRORS:
                    raise
                last = e
        else:
            lines = list(self.log)[-3:]
            raise BoardError(
                f"no protocol reply to HELLO: is an ODLEngine sketch (e.g. {get_sketch(DEFAULT_SKETCH).folder}) flashed "
                f"on this board? Last lines received: {lines or 'nothing'}",
                command="HELLO",
            ) from last
        self.hello = {k: _parse_value(v) for k, v in f.fields.items()}
        if self.hello.get("proto") != PROTOCOL_VERSION:
            raise BoardError(
                f"board speaks protocol version {self.hello.get('proto')}, this odlkit speaks {PROTOCOL_VERSION}: "
                f"flash the sketch from this repository ({get_sketch(DEFAULT_SKETCH).folder}) or update odlkit",
                command="HELLO",
            )

    def _next_seq(self) -> int:
        self._seq = self._seq + 1 if self._seq < MAX_SEQ else 1
        return self._seq

    def _request(
        self,
        cmd: str,
        *tokens: str,
        timeout: float | None = None,
        on_event: Callable[[Frame], None] | None = None,
        on_line: Callable[[str], None] | None = None,
        retry: bool | None = None,
    ) -> Frame:
        """Send one command, wait for its final reply; events go to on_event, non-frame lines to on_line."""
        if self._closed:
            raise BoardError("the board connection is closed; open a new one", command=cmd)
        if retry is None:
            retry = cmd in READ_ONLY
        timeout = self.timeout if timeout is None else float(timeout)
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            seq = self._next_seq()
            try:
                self._t.write(encode_frame(seq, cmd, *tokens))
            except TransportClosed as e:
                raise BoardError(str(e), command=cmd) from None
            try:
                return self._await(seq, cmd, timeout, on_event, on_line)
            except BoardError as e:
                transient = isinstance(e, BoardTimeout) or e.code in FRAMING_ERRORS
                if attempt + 1 < attempts and transient:
                    continue
                raise
        raise AssertionError("unreachable")

    def _await(self, seq, cmd, timeout, on_event, on_line) -> Frame:
        deadline = time.monotonic() + timeout
        framing_error: Frame | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if framing_error is not None:
                    raise BoardError(
                        f"{framing_error.message} (the request was damaged on the way; retry)", framing_error.code, cmd
                    )
                raise BoardTimeout(
                    f"no reply within {timeout:g} s; check the board is connected and running the sketch "
                    "(press its reset button), then retry",
                    command=cmd,
                )
            try:
                line = self._t.readline(remaining)
            except TransportClosed as e:
                raise BoardError(str(e), command=cmd) from None
            if line is None:
                continue
            if not line.startswith(b"$"):
                text = line.decode(errors="replace").rstrip("\r\n")
                if on_line is not None:
                    on_line(text)
                elif text.strip():
                    self.log.append(text)
                continue
            try:
                f = parse_frame(line)
            except FrameError:
                self.corrupted_frames += 1
                continue
            if f.kind == "ERR" and f.seq == 0:
                # A framing error: either our request was damaged (then no reply with our seq
                # will come) or noise before it was rejected (then our reply follows at once).
                if f.code in FRAMING_ERRORS:
                    framing_error = f
                    deadline = min(deadline, time.monotonic() + FRAMING_GRACE_S)
                continue
            if f.seq != seq:
                continue  # stale reply of an earlier, timed-out request, or the boot banner
            if f.kind == "EV":
                deadline = time.monotonic() + timeout  # progress: extend the inactivity timeout
                if on_event is not None:
                    on_event(f)
                continue
            if f.kind == "ERR":
                raise BoardError(f.message, f.code, cmd)
            if f.kind == "OK":
                return f
            self.corrupted_frames += 1

    # ------------------------------------------------------------------ commands
    def info(self) -> dict:
        """Board state: protocol/firmware version, board revision, feature dim, classes (``names``),
        stored samples, RAM used by the engine, free RAM, last forward/head/train times (us), bytes sent."""
        f = self._request("INFO")
        out = {k: _parse_value(v) for k, v in f.fields.items()}
        names = f.fields.get("names", "-")
        out["names"] = [] if names == "-" else names.split(",")
        return out

    def class_names(self) -> list[str]:
        return self.info()["names"]

    def add_class(self, name: str) -> int:
        """Add a class to the board's head (a new zero row); returns its index."""
        if not valid_class_name(name):
            raise ValueError(f"class name {name!r} must be 1..15 characters of A-Z a-z 0-9 _ . - and not a number")
        return self._request("ADDCLASS", name).int("index")

    def record(
        self,
        label: str | int,
        n: int = 1,
        on_window: Callable[[int, int, str], None] | None = None,
        add_class: bool = False,
    ) -> int:
        """Record ``n`` windows of class ``label`` (name or index) into the board's training store.

        On the real board each window is 2 s of IMU data: on_window(i, n, label) is called
        just before window i starts (tell the user to move). On the virtual board the next
        recorded windows of that class are replayed. add_class: create the class if the board
        does not have it, once its first window is stored (a failed RECORD adds no class).
        Returns the number of stored samples.
        """
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")

        def ev(f: Frame) -> None:
            if on_window is not None:
                on_window(f.int("i"), f.int("n"), f.fields.get("class", str(label)))

        timeout = self.timeout + (RECORD_SECONDS_PER_WINDOW + 1.0 if self.kind == "serial" else 0.0)
        args = [str(label), f"n={n}"] + (["add=1"] if add_class else [])
        return self._request("RECORD", *args, timeout=timeout, on_event=ev).int("stored")

    def train(
        self,
        epochs: int = 10,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int = 8,
        mode: str = "full",
        use_replay: bool = True,
        callback: Callable[[int, float, float], None] | None = None,
        seed: int | None = None,
        plan: str | None = None,
        k: int | None = None,
        q: str | None = None,
        qas: bool | None = None,
    ) -> TrainResult:
        """Train the head on the board (SGD with momentum on the stored features).

        mode: "full" (W and b) or "bias" (bias only, the TinyTL idea). use_replay: train on
        the whole store (True) or only this session's samples. callback(epoch, loss, acc) is
        called after each epoch as the board reports it. seed: restart the board's shuffle from
        this seed (the orders of ``odlkit.head.Head.fit(order="shuffle", seed=seed)``); None
        continues the board's generator.
        plan: which parameters are trained (None: the firmware's default). Lab 1 sketches (a head
        on a pretrained backbone; default "head"): "head", "bias" (every backbone bias too, TinyTL)
        or "sparse" (every bias and the kernels of the last ``k`` backbone layers with weights), on
        the stored windows, which needs a firmware with a plan buffer (INFO ``plan_cap``); ``mode``
        still says what of the head is trained. Lab 2's two-layer network (no backbone; default
        "all"): "all" (both layers) or "head" (hidden layer random and frozen). A plan the sketch
        does not have is board error 6.
        q: the arithmetic (None: the firmware's default, float). "int8" trains an int8 head on the
        full-integer backbone's features (a firmware with the int8 path: INFO ``int8_ram`` > 0; head
        plan, mode "full"); the board then predicts in int8 until a float training, SETW or LOAD.
        qas (with q="int8"; None: the board's default, True): quantization-aware scaling of the
        gradients (Lin et al. 2022) or, False, naive int8 training.
        """
        if mode not in ("full", "bias"):
            raise ValueError(f"mode must be 'full' or 'bias', got {mode!r}")
        if plan not in (None, "head", "bias", "sparse", "all"):
            raise ValueError(f"plan must be 'head', 'bias', 'sparse' or 'all', got {plan!r}")
        if (plan == "sparse") != (k is not None):
            raise ValueError("k (layers whose kernel is updated) goes with plan='sparse' only, and it needs one")
        if k is not None and (isinstance(k, bool) or int(k) != k or not 1 <= k <= 255):
            raise ValueError(f"k must be an integer 1..255, got {k!r}")
        if q not in (None, "float", "int8"):
            raise ValueError(f"q must be 'float' or 'int8', got {q!r}")
        if qas is not None and (q != "int8" or not isinstance(qas, (bool, np.bool_))):
            raise ValueError(f"qas (True or False) goes with q='int8' only, got qas={qas!r} with q={q!r}")
        history: list[dict] = []

        def ev(f: Frame) -> None:
            row = {"epoch": f.int("epoch"), "loss": f.float("loss"), "acc": f.float("acc")}
            history.append(row)
            if callback is not None:
                callback(row["epoch"], row["loss"], row["acc"])

        f = self._request(
            "TRAIN",
            f"epochs={int(epochs)}",
            f"lr={float(lr)!r}",
            f"mom={float(momentum)!r}",
            f"wd={float(weight_decay)!r}",
            f"batch={int(batch_size)}",
            f"mode={mode}",
            f"replay={int(bool(use_replay))}",
            *([] if seed is None else [f"seed={int(seed)}"]),
            *([] if plan is None else [f"plan={plan}"]),
            *([] if k is None else [f"k={int(k)}"]),
            *([] if q is None else [f"q={q}"]),
            *([] if qas is None else [f"qas={int(bool(qas))}"]),
            on_event=ev,
        )
        return TrainResult(f.int("epochs"), f.float("loss"), f.float("acc"), f.int("train_us"), history)

    def predict(self, label: str | None = None) -> Prediction:
        """Classify one fresh window from the sensor.

        label: only for the virtual board, the class the simulated user performs (a held-out
        recording of it is replayed); None replays the next held-out recording. Ignored by
        a real board (the person holding it moves).
        """
        args = [] if label is None else [str(label)]
        timeout = self.timeout + (RECORD_SECONDS_PER_WINDOW + 1.0 if self.kind == "serial" else 0.0)
        f = self._request("PREDICT", *args, timeout=timeout)
        return Prediction(
            label=f.int("label"),
            name=f.fields.get("name", ""),
            confidence=f.float("conf"),
            probabilities=np.asarray(f.floats("probs"), dtype=np.float32),
            forward_us=f.int("fwd_us"),
            head_us=f.int("head_us"),
            truth=f.fields.get("truth"),
        )

    def evaluate(self, use_replay: bool = True) -> Evaluation:
        """Accuracy and confusion matrix of the board's head on its stored samples."""
        rows: dict[int, list[int]] = {}

        def ev(e: Frame) -> None:  # one row of the confusion matrix per event
            rows[e.int("row")] = [int(v) for v in e.fields.get("cm", "").split(",") if v]

        f = self._request("EVAL", f"replay={int(bool(use_replay))}", on_event=ev)
        k = f.int("classes")
        if sorted(rows) != list(range(k)) or any(len(r) != k for r in rows.values()):
            raise BoardError(f"EVAL sent {len(rows)} confusion rows for {k} classes", command="EVAL")
        cm = np.asarray([rows[i] for i in range(k)], dtype=np.int64).reshape(k, k)
        return Evaluation(f.int("n"), f.int("correct"), f.float("acc"), f.float("loss"), cm)

    def get_weights(self) -> weights_mod.HeadWeights:
        """Download the head as ``odlkit.weights.HeadWeights`` (W is (feature_dim, n_classes))."""
        return weights_mod.decode(self._get_blob())  # CRC-checked: raises WeightsFormatError if corrupted

    def set_weights(self, head: weights_mod.HeadWeights) -> None:
        """Upload a head; the board applies it only when the whole blob arrived and its CRC matches."""
        self._set_blob(weights_mod.encode(head))

    def _get_blob(self) -> bytes:
        """The board's weights blob (head or network), read in GETW chunks, each checked against its header."""
        blob = bytearray()
        total = None
        while total is None or len(blob) < total:
            f = self._request("GETW", f"off={len(blob)}")
            total = f.int("total")
            if f.int("off") != len(blob):
                raise BoardError(f"GETW chunk at offset {f.int('off')}, expected {len(blob)}", command="GETW")
            chunk = base64.b64decode(f.fields["data"], validate=True)
            if len(chunk) != f.int("len") or not chunk:
                raise BoardError("GETW chunk length does not match its header", command="GETW")
            blob += chunk
        return bytes(blob)

    def _set_blob(self, blob: bytes) -> None:
        """Upload a weights blob in SETW chunks; the board applies it only when it is whole and its CRC matches."""
        for off in range(0, len(blob), CHUNK_BYTES):
            chunk = base64.b64encode(blob[off : off + CHUNK_BYTES]).decode()
            f = self._request("SETW", f"total={len(blob)}", f"off={off}", f"data={chunk}")
        if f.int("applied") != 1:
            raise BoardError("SETW finished but the board did not apply the weights", command="SETW")

    def get_network(self) -> weights_mod.MlpWeights:
        """Lab 2: download the two-layer network and its standardizer (``odlkit.weights.MlpWeights``;
        ``odlkit.mlp.TwoLayerNet.from_weights`` turns it into the numpy reference)."""
        return weights_mod.decode_mlp(self._get_blob())

    def set_network(self, net) -> None:
        """Lab 2: upload a two-layer network (``MlpWeights`` or ``odlkit.mlp.TwoLayerNet``); applied only
        when the whole blob arrived, its CRC matches and every value is finite."""
        if hasattr(net, "to_weights"):
            net = net.to_weights()
        self._set_blob(weights_mod.encode_mlp(net))

    def lpc(self, pcm, rate: int = 16000) -> LpcFrames:
        """The board's own audio front end on ``pcm`` (int16 samples at ``rate`` 16000 or 10000 Hz):
        resampling, 25.6 ms frames every 6.4 ms, LPC cepstra, energy gate. Returns every frame the
        audio completes (compare with ``odlkit.audio.lpc_cepstra(pcm / 32768, rate_hz=rate)``)."""
        pcm = np.asarray(pcm)
        if pcm.ndim != 1 or pcm.size == 0:
            raise ValueError(f"pcm must be a non-empty 1-D array of int16 samples, got shape {pcm.shape}")
        if not np.issubdtype(pcm.dtype, np.integer) or pcm.min() < -32768 or pcm.max() > 32767:
            raise ValueError("pcm must hold int16 samples (-32768..32767)")
        if rate not in (16000, 10000):
            raise ValueError(f"rate must be 16000 or 10000, got {rate}")
        raw = pcm.astype("<i2").tobytes()
        idx, db, voiced, ceps = [], [], [], []

        def ev(f: Frame) -> None:
            idx.append(f.int("i"))
            db.append(f.float("db"))
            voiced.append(f.int("voiced") == 1)
            ceps.append(np.frombuffer(base64.b64decode(f.fields["c"], validate=True), dtype="<f4"))

        last = None
        for off in range(0, len(raw), CHUNK_BYTES):
            args = [f"off={off}", f"data={base64.b64encode(raw[off : off + CHUNK_BYTES]).decode()}"]
            if off == 0:
                args.append(f"rate={rate}")
            last = self._request("LPC", *args, on_event=ev)
        if last is None or last.int("frames") != len(idx):
            raise BoardError(f"LPC: the board analysed {last.int('frames') if last else 0} frames but "
                             f"{len(idx)} arrived intact", command="LPC")
        return LpcFrames(np.asarray(idx, np.int64), np.asarray(ceps, np.float32).reshape(-1, 12),
                         np.asarray(db, np.float32), np.asarray(voiced, bool), last.int("lpc_us"))

    def get_features(self, with_sessions: bool = False):
        """Download the board's stored feature vectors: ``(X (n, feature_dim) float32, y (n,) int64)``
        (plus the session ids if with_sessions), to train the same head on the host."""
        first = self._request("GETF", "i=0") if self.info()["stored"] > 0 else None
        if first is None:
            dim = int(self.hello.get("dim", 0))
            empty = (np.zeros((0, dim), np.float32), np.zeros(0, np.int64))
            return (*empty, np.zeros(0, np.int64)) if with_sessions else empty
        n = first.int("n")
        rows, labels, sessions = [], [], []
        for i in range(n):
            f = first if i == 0 else self._request("GETF", f"i={i}")
            rows.append(np.frombuffer(base64.b64decode(f.fields["data"], validate=True), dtype="<f4"))
            labels.append(f.int("label"))
            sessions.append(f.int("session"))
        X = np.stack(rows).astype(np.float32)
        y = np.asarray(labels, dtype=np.int64)
        return (X, y, np.asarray(sessions, dtype=np.int64)) if with_sessions else (X, y)

    def save(self) -> int:
        """Save the head to the board's storage (flash on the real board); returns the blob size."""
        return self._request("SAVE").int("bytes")

    def load(self) -> int:
        """Load the last saved head; returns its number of classes."""
        return self._request("LOAD").int("classes")

    def reset(self, what: str = "all") -> None:
        """"all": initial head and empty store; "samples": empty store; "session": start a new session."""
        if what not in ("all", "samples", "session"):
            raise ValueError(f"what must be 'all', 'samples' or 'session', got {what!r}")
        self._request("RESET", f"what={what}")

    def stream(self, seconds: int = 10) -> np.ndarray:
        """Raw sensor samples for ``seconds`` (25 Hz), (n, 6): ax ay az [g], gx gy gz [deg/s].

        The board prints them as the Edge Impulse data forwarder expects (comma separated).
        """
        seconds = int(seconds)
        if not 1 <= seconds <= 3600:
            raise ValueError(f"seconds must be 1..3600, got {seconds}")
        rows: list[list[float]] = []

        def on_line(text: str) -> None:
            try:
                rows.append([float(v) for v in text.split(",")])
            except ValueError:
                self.log.append(text)

        timeout = self.timeout + (seconds + 1.0 if self.kind == "serial" else 0.0)
        f = self._request("STREAM", f"s={seconds}", timeout=timeout, on_line=on_line)
        if f.int("n") != len(rows):
            raise BoardError(f"STREAM sent {f.int('n')} samples but {len(rows)} arrived intact", command="STREAM")
        ch = int(self.hello.get("ch", 6))
        return np.asarray(rows, dtype=np.float32).reshape(-1, ch)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the connection (the virtual board process exits). Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._t.close()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        h = self.hello
        return f"<Board {self.kind} board={h.get('board')} fw={h.get('fw')} classes={h.get('classes')}>"


def find_serial_port() -> str:
    """The serial port of the (single) Arduino Nano 33 BLE plugged in; clear errors otherwise."""
    from serial.tools import list_ports

    ports = [p for p in list_ports.comports() if p.vid == ARDUINO_VID]
    boot = [p for p in ports if p.pid in BOOTLOADER_PIDS]
    if boot and len(boot) == len(ports):
        raise BoardError(
            f"the Arduino on {boot[0].device} is in bootloader mode (orange LED pulsing): upload "
            f"{get_sketch(DEFAULT_SKETCH).folder}, or press the reset button once to start the sketch"
        )
    ports = [p for p in ports if p.pid not in BOOTLOADER_PIDS]
    if not ports:
        others = ", ".join(p.device for p in list_ports.comports()) or "none"
        raise BoardNotFoundError(
            "no Arduino Nano 33 BLE found on any serial port (USB VID 0x2341; ports seen: "
            f"{others}); plug it in with a data USB cable, or use Board.virtual(...)"
        )
    if len(ports) > 1:
        names = ", ".join(p.device for p in ports)
        raise BoardError(f"several Arduino boards found ({names}); choose one: Board.serial(port=...)")
    return ports[0].device
