"""The virtual board: build the sketch's C++ (ODLEngine + protocol) for the host, and write
the replay file of real recorded windows its simulated sensor plays back.

The executable is ``arduino_sketches/virtual_board/main.cpp`` + ``arduino_sketches/ODLEngine/src/*.cpp``
+ the sketch's ``odl_model_data.h`` / ``sketch_config.h``, compiled once with g++ and cached
under ``build/virtual_board/<sketch>-<hash of sources and flags>/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from odlkit import config
from odlkit.board import cxxflags
from odlkit.sketches import DEFAULT_SKETCH, get_sketch

SKETCHES_DIR = config.SKETCHES_DIR  # a checkout's arduino_sketches/, or the copy inside the wheel
LIBRARY_SRC = SKETCHES_DIR / "ODLEngine" / "src"
VIRTUAL_MAIN = SKETCHES_DIR / "virtual_board" / "main.cpp"
BUILD_DIR = config.BUILD_DIR / "virtual_board"
CXXFLAGS = cxxflags.HOST  # includes -ffp-contract=off: the build must not depend on the compiler's default


def _sources(sketch: str) -> tuple[list[Path], list[Path]]:
    kind = get_sketch(sketch).kind  # a registered sketch (odlkit.sketches), or a clear error
    sketch_dir = SKETCHES_DIR / sketch
    needs_model = kind == "imu"  # an audio sketch (Lab 2) has no backbone header
    if (needs_model and not (sketch_dir / "odl_model_data.h").exists()) or not (sketch_dir / "sketch_config.h").exists():
        raise FileNotFoundError(
            f"{sketch_dir} lacks its generated odl_model_data.h / sketch_config.h; generate them with "
            f"`python -m odlkit.export.sketch_headers {sketch}` (or `make headers`)"
        )
    cpp = [VIRTUAL_MAIN, *sorted(LIBRARY_SRC.glob("*.cpp"))]
    headers = sorted(LIBRARY_SRC.glob("*.h")) + sorted(sketch_dir.glob("*.h"))
    return cpp, headers


class NoCompilerError(RuntimeError):
    """No C++ compiler to build the virtual board with; the message says how to get one.

    In a notebook only the message is shown (IPython's ``_render_traceback_``): the traceback
    through the kit would say nothing more."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


# Tried in order when CXX is not set (macOS's command-line tools install `c++`/`clang++`, and a
# `g++` that is clang too).
DEFAULT_COMPILERS = ("g++", "c++", "clang++")
COMPILER_HINTS = """\
Board.virtual compiles the sketch's C++ for this computer once (cached in {build_dir}) and
needs a C++14 compiler for that; {tried} found none. Install one, then run the cell again:
  Debian/Ubuntu:  sudo apt-get install g++
  Fedora:         sudo dnf install gcc-c++
  macOS:          xcode-select --install   (Apple's command-line tools: clang++)
  Windows:        use WSL (`wsl --install`, then the Debian/Ubuntu line inside it)
  any compiler:   set CXX, e.g. CXX=clang++-14 or CXX=/opt/gcc/bin/g++, before starting Jupyter"""


def _build_key(cxx: str, flags: list[str], cpp: list[Path], headers: list[Path]) -> str:
    h = hashlib.sha256()
    h.update(" ".join([cxx, *flags]).encode())
    for p in cpp + headers:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _exe_path(sketch: str, key: str) -> Path:
    return BUILD_DIR / f"{sketch}-{key}" / ("virtual_board.exe" if os.name == "nt" else "virtual_board")


def build_virtual_board(sketch: str = DEFAULT_SKETCH, extra_flags: list[str] | None = None, force: bool = False) -> Path:
    """Compile (or reuse) the virtual board executable of ``sketch`` and return its path.

    A build already in the cache for the current sources is used without a compiler; a new build
    needs ``$CXX`` (or the first of g++, c++, clang++ on PATH), else :class:`NoCompilerError`.
    """
    cpp, headers = _sources(sketch)
    flags = CXXFLAGS + list(extra_flags or [])
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else list(DEFAULT_COMPILERS)
    if not force:
        for name in candidates:
            exe = _exe_path(sketch, _build_key(name, flags, cpp, headers))
            if exe.exists():
                return exe
    cxx = next((c for c in candidates if shutil.which(c)), None)
    if cxx is None:
        tried = f"CXX={candidates[0]!r}" if os.environ.get("CXX") else "looking for " + ", ".join(candidates)
        raise NoCompilerError(COMPILER_HINTS.format(build_dir=BUILD_DIR, tried=tried))
    exe = _exe_path(sketch, _build_key(cxx, flags, cpp, headers))
    out_dir = exe.parent
    if exe.exists() and not force:
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        if os.name != "nt":
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel tests)
        if exe.exists() and not force:
            return exe
        tmp = out_dir / f"virtual_board.tmp{os.getpid()}"
        cmd = [cxx, *flags, f"-I{LIBRARY_SRC}", f"-I{SKETCHES_DIR / sketch}", *map(str, cpp), "-o", str(tmp)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"building the virtual board failed:\n{' '.join(cmd)}\n{res.stderr[-4000:]}")
        os.replace(tmp, exe)
    return exe


def write_replay(path: str | Path, record, predict=None, rate_hz: int = 25, seed: int = 0,
                 max_len: int | None = None) -> Path:
    """Write a replay file for the virtual board's sensor.

    record / predict: ``odlkit.data.Dataset`` of (n, 50, 6) windows (accel g, gyro deg/s):
    ``record`` is what RECORD <class> plays back, ``predict`` (held-out recordings) what
    PREDICT plays back (default: ``record``). Windows are shuffled with ``seed`` so
    consecutive recordings of a class come from different recordings.

    ``max_len`` writes format version 2, variable-length windows (Lab 2's utterances, a list of
    (frames, channels) arrays with 1 <= frames <= max_len): each line carries its frame count.
    """
    if max_len is not None:
        return _write_replay_v2(Path(path), record, predict, rate_hz, seed, int(max_len))
    rng = np.random.default_rng(seed)
    pools = [("r", record), ("p", predict if predict is not None else record)]
    lines = []
    length = channels = None
    for tag, ds in pools:
        X = np.asarray(ds.X, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(f"replay windows must be (n, steps, channels), got {X.shape}")
        length, channels = X.shape[1], X.shape[2]
        for i in rng.permutation(len(X)):
            name = str(ds.class_names[int(ds.y[i])])
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"class name {name!r} cannot be replayed (no spaces allowed)")
            values = " ".join(f"{v:.9g}" for v in X[i].reshape(-1))
            lines.append(f"{tag} {name} {values}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"ODLREPLAY 1 {length} {channels} {rate_hz} {len(lines)}"
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(header + "\n" + "\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


_replay_class_cache: dict[tuple[str, float], list[str]] = {}


def replay_classes(path: str | Path) -> list[str]:
    """The classes RECORD can play back from a replay file (its ``r`` pool), sorted."""
    path = Path(path)
    key = (str(path), path.stat().st_mtime)
    if key not in _replay_class_cache:
        names: list[str] = []
        with open(path) as f:
            f.readline()
            for line in f:
                tag, _, rest = line.partition(" ")
                name = rest.partition(" ")[0]
                if tag == "r" and name not in names:
                    names.append(name)
        _replay_class_cache[key] = sorted(names)
    return list(_replay_class_cache[key])


def replayable_classes(board) -> list[str] | None:
    """What a virtual board can RECORD (the classes of its replay file); None for a real board,
    which records whatever its user performs."""
    if getattr(board, "kind", None) != "virtual":
        return None
    argv = list(getattr(getattr(board, "_t", None), "argv", None) or [])
    if "--replay" not in argv[:-1]:
        return None
    return replay_classes(argv[argv.index("--replay") + 1])


def dataset_replay(dataset: str = "basic_motions", test_size: float = 0.25, seed: int = 0) -> Path:
    """Replay file (cached) of an IMU dataset: recordings split by group into RECORD / PREDICT pools."""
    from odlkit import data

    ds = data.imu_windows(dataset)
    # Key the cache by the data itself, so a changed loader or recording never replays stale windows.
    digest = hashlib.sha256(ds.X.tobytes() + ds.y.tobytes()).hexdigest()[:12]
    out = BUILD_DIR / "replay" / f"{dataset}-t{test_size}-s{seed}-{digest}.txt"
    if out.exists():
        return out
    by_group = ds.groups is not None and len(np.unique(ds.groups)) > 1
    train, test = data.train_test_split(ds, test_size=test_size, seed=seed, by_group=by_group)
    return write_replay(out, train, test, seed=seed)


def _write_replay_v2(path: Path, record, predict, rate_hz: int, seed: int, max_len: int) -> Path:
    rng = np.random.default_rng(seed)
    lines = []
    channels = None
    for tag, ds in [("r", record), ("p", predict if predict is not None else record)]:
        for i in rng.permutation(len(ds.X)):
            x = np.asarray(ds.X[i], dtype=np.float32)
            if x.ndim != 2 or not 1 <= len(x) <= max_len:
                raise ValueError(f"utterance {i} has shape {x.shape}: need (1..{max_len} frames, channels)")
            if channels is not None and x.shape[1] != channels:
                raise ValueError(f"utterances have {channels} and {x.shape[1]} channels: they must agree")
            if not np.all(np.isfinite(x)):
                raise ValueError(f"utterance {i} contains NaN or Inf")
            channels = x.shape[1]
            name = str(ds.class_names[int(ds.y[i])])
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"class name {name!r} cannot be replayed (no spaces allowed)")
            lines.append(f"{tag} {name} {len(x)} " + " ".join(f"{v:.9g}" for v in x.reshape(-1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"ODLREPLAY 2 {max_len} {channels} {rate_hz} {len(lines)}"
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(header + "\n" + "\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def utterance_replay(dataset: str = "japanese_vowels", seed: int = 0, max_len: int = 32) -> Path:
    """Replay file (cached, format 2) of a speech-feature dataset (variable-length utterances of LPC
    cepstra, e.g. ``japanese_vowels``): the data set's own train split is what RECORD plays back,
    its test split (recorded on other occasions) what PREDICT plays back."""
    from odlkit import data

    ds = data.load(dataset)
    split = np.asarray((ds.meta or {}).get("split", ["train"] * len(ds.X)))
    h = hashlib.sha256(np.asarray(ds.y).tobytes())
    for x in ds.X:
        h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    out = BUILD_DIR / "replay" / f"{dataset}-utt-s{seed}-m{max_len}-{h.hexdigest()[:12]}.txt"
    if out.exists():
        return out
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split != "train")
    if len(test) == 0:
        test = train
    return _write_replay_v2(out, ds.subset(train), ds.subset(test), 156, seed, max_len)  # 156 frames/s (6.4 ms)
