"""A cache of the test suite's C++ builds (host executables, ARM ELFs, objects), shared by runs,
xdist workers and test modules.

Every test module used to compile its executables into a fresh pytest folder, so each run (and
each of the two xdist workers, and each module building the same executable) paid for the same
g++ run again: 10-15 s of set-up per module on a loaded machine, several builds with sanitizers.
:func:`compile_cached` runs a compile command once per content: the key is

* the compiler's identity: its resolved path and ``--version`` output (system headers, the
  sanitizer and libFuzzer run-times come with it);
* every argument, with paths replaced by what they name: a source by its path and contents
  (``__FILE__`` in a C++ test's failure message names it), an object or linker script by its
  file name and contents, an include folder (``-I``) by the names of the files in it (what
  it contributes is in the next item; ``__has_include`` sees which files exist), the output
  (``-o``) left out;
* every header the preprocessor reads outside the system folders, by name and contents, as
  listed by the same compiler with the same flags and ``-MM`` (a preprocessor pass: ~0.1 s).

So a changed source, header, flag or compiler rebuilds, a pytest folder's path (a generated
header's, an object's, the output's) does not: one build per checkout and content. The
entry is built in the cache folder (``$ODL_CACHE_DIR/test-builds``, default
``~/.cache/odlkit/test-builds``) under a lock, so two workers needing the same build wait for
one compile, and copied to the path the test asked for. Only
successful builds are stored; a failing compile runs (and fails) every time, with the
compiler's output. ``ODL_TEST_BUILD_CACHE=0`` turns the cache off (every build compiles).
The least recently used entries are removed beyond ``MAX_CACHE_BYTES``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from odlkit import config

CACHE_ROOT = Path(os.environ.get("ODL_TEST_BUILD_CACHE_DIR", config.CACHE_DIR / "test-builds"))
ENABLED = os.environ.get("ODL_TEST_BUILD_CACHE", "1") != "0"
MAX_CACHE_BYTES = 2 * 1024**3  # sanitizer and libFuzzer builds are 5-20 MB each
SOURCE_SUFFIXES = (".c", ".cc", ".cpp")


@functools.cache
def compiler_identity(cxx: str) -> str:
    path = shutil.which(cxx)
    if path is None:
        raise FileNotFoundError(f"{cxx} not found")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    return f"{os.path.realpath(path)}\n{version}"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing_digest(folder: Path) -> str:
    """An include folder by the names of the files in it (not its path): which headers exist can
    change a build without changing what it reads (``#if __has_include(<x.h>)``)."""
    names = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        rel = Path(root).relative_to(folder)
        names += [str(rel / f) for f in sorted(files) if not f.startswith(".")]
    return hashlib.sha256("\0".join(names).encode()).hexdigest()[:16]


def _split_output(cmd: Sequence[str]) -> tuple[list[str], str | None]:
    """The command without ``-o OUT`` (or ``-oOUT``), and OUT."""
    args, out, i = [], None, 0
    while i < len(cmd):
        a = cmd[i]
        if a == "-o" and i + 1 < len(cmd):
            out, i = cmd[i + 1], i + 2
            continue
        if a.startswith("-o") and len(a) > 2 and not a.startswith("-O"):
            out = a[2:]
        else:
            args.append(a)
        i += 1
    return args, out


def _dependencies(args: list[str]) -> list[Path] | None:
    """The non-system headers (and sources) the preprocessor reads for ``args`` (g++/clang -MM)."""
    cmd = [a for a in args if a != "-c"] + ["-MM"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return None  # the compile itself will fail and say why
    deps = []
    for token in res.stdout.replace("\\\n", " ").split():
        if not token.endswith(":"):
            deps.append(Path(token))
    return deps


def build_key(cmd: Sequence[str]) -> str | None:
    """The content key of a compile command (``None`` if its dependencies cannot be listed)."""
    args, _ = _split_output([str(c) for c in cmd])
    h = hashlib.sha256(compiler_identity(args[0]).encode())
    for a in args[1:]:
        if a.startswith("-I"):
            h.update(f"\0-I{_listing_digest(Path(a[2:]))}".encode())
            continue
        prefix, name = ("-T", a[2:]) if a.startswith("-T") else ("", a)
        p = Path(name)
        if p.is_file():
            # a source by its path too: __FILE__ in a C++ test's failure message names it
            name = str(p.resolve()) if p.suffix in SOURCE_SUFFIXES else p.name
            h.update(f"\0{prefix}file:{name}:{_file_digest(p)}".encode())
        else:
            h.update(f"\0{a}".encode())
    deps = _dependencies(args)
    if deps is None:
        return None
    for d in deps:
        h.update(f"\0dep:{d.name}:{_file_digest(d)}".encode())
    return h.hexdigest()[:24]


def _materialize(entry: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    # a copy, not a hard link: a compiler writing an object over the test's file later would
    # write into the cache entry too (a few MB, milliseconds)
    shutil.copy2(entry, tmp)
    os.replace(tmp, out)


def _prune(keep: Path) -> None:
    entries = [d for d in CACHE_ROOT.iterdir() if d.is_dir()]
    sizes = {d: sum(f.stat().st_size for f in d.iterdir() if f.is_file()) for d in entries}
    total = sum(sizes.values())
    for d in sorted(entries, key=lambda d: d.stat().st_mtime):
        if total <= MAX_CACHE_BYTES:
            break
        if d != keep:
            shutil.rmtree(d, ignore_errors=True)
            total -= sizes[d]


def compile_cached(cmd: Sequence[str | os.PathLike], timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the compile (or link) command ``cmd`` (it must name its output with ``-o``), or copy its
    output from the cache. Returns the compiler's ``CompletedProcess`` (empty output on a hit)."""
    cmd = [str(c) for c in cmd]
    args, out = _split_output(cmd)
    if out is None:
        raise ValueError(f"compile_cached needs -o OUTPUT: {' '.join(cmd)}")
    key = build_key(cmd) if ENABLED else None
    if key is None:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    entry_dir = CACHE_ROOT / key
    entry = entry_dir / "output"  # the output's name does not change what is built
    entry_dir.mkdir(parents=True, exist_ok=True)
    res = subprocess.CompletedProcess(cmd, 0, "", "")  # a hit: nothing compiled, nothing said
    with open(entry_dir / ".lock", "w") as lock:
        if os.name != "nt":
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # one compile per key at a time (xdist workers)
        if entry.exists():
            os.utime(entry_dir)  # recently used: pruned last
        else:
            tmp = entry_dir / f"build.tmp{os.getpid()}"
            built = subprocess.run([*args, "-o", str(tmp)], capture_output=True, text=True, timeout=timeout)
            res = subprocess.CompletedProcess(cmd, built.returncode, built.stdout, built.stderr)
            if built.returncode != 0:
                tmp.unlink(missing_ok=True)
                return res
            os.replace(tmp, entry)
            _prune(entry_dir)
    _materialize(entry, Path(out))
    return res
