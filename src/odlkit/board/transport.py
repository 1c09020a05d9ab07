"""Byte transports for :class:`odlkit.board.Board`: a serial port, or a child process's pipes.

Both give ``write(bytes)``, ``readline(timeout) -> bytes | None`` (None when no complete line
arrived in time) and ``close()``. Reads wait with deadlines (select on POSIX; a reader thread
for pipes on Windows).
"""

from __future__ import annotations

import os
import select
import subprocess
import time


class TransportClosed(ConnectionError):
    """The other side went away (process exited, cable unplugged)."""


class _LineBuffer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def pop_line(self) -> bytes | None:
        i = self.buf.find(b"\n")
        if i < 0:
            return None
        line = bytes(self.buf[: i + 1])
        del self.buf[: i + 1]
        return line

    def read_line(self, timeout: float, read_chunk) -> bytes | None:
        """The next complete line, reading with ``read_chunk(remaining_seconds) -> bytes`` (b"" when
        nothing arrived yet) until ``timeout`` seconds have passed; None on timeout."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            line = self.pop_line()
            if line is not None:
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.buf += read_chunk(remaining)


class SerialTransport:
    """A pyserial port (USB CDC of the Nano 33 BLE, or a pty)."""

    def __init__(self, port: str, baudrate: int = 115200) -> None:
        import serial  # pyserial

        self.port = port
        self._lines = _LineBuffer()
        try:
            self._ser = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=5, exclusive=True)
        except serial.SerialException as e:
            text = str(e)
            if "busy" in text.lower() or "lock" in text.lower() or "Permission" in text:
                hint = (
                    "the port is busy or not accessible: close the Arduino IDE serial monitor / other notebooks "
                    "using it (or add yourself to the 'dialout' group on Linux)"
                )
            else:
                hint = "check the cable and the port name (Board.serial() without a port auto-detects)"
            raise ConnectionError(f"cannot open serial port {port}: {text}; {hint}") from None
        try:
            self._ser.reset_input_buffer()  # drop output of an earlier session
        except serial.SerialException:
            pass

    def write(self, data: bytes) -> None:
        import serial

        try:
            self._ser.write(data)
            self._ser.flush()
        except serial.SerialException as e:
            raise TransportClosed(f"serial port {self.port} failed while writing ({e}): was the board unplugged?") from None

    def readline(self, timeout: float) -> bytes | None:
        return self._lines.read_line(timeout, self._read_chunk)

    def _read_chunk(self, remaining: float) -> bytes:
        import serial

        try:
            chunk = self._ser.read(self._ser.in_waiting or 1)
        except serial.SerialException as e:
            raise TransportClosed(f"serial port {self.port} failed while reading ({e}): was the board unplugged?") from None
        if not chunk:
            time.sleep(min(0.002, remaining))
        return chunk

    def close(self) -> None:
        try:
            self._ser.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class ProcessTransport:
    """stdin / stdout pipes of a child process (the virtual board)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self._lines = _LineBuffer()
        self._stderr_path = None
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self._fd = self.proc.stdout.fileno()
        self._queue = None
        if os.name == "nt":  # select() does not work on pipes on Windows: a reader thread instead
            import queue
            import threading

            self._queue = queue.Queue()

            def pump() -> None:
                while True:
                    chunk = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") else os.read(self._fd, 65536)
                    self._queue.put(chunk)
                    if not chunk:
                        return

            threading.Thread(target=pump, daemon=True).start()

    def _dead(self) -> TransportClosed:
        err = b""
        try:
            err = self.proc.stderr.read() or b""
        except Exception:  # noqa: BLE001
            pass
        code = self.proc.poll()
        return TransportClosed(
            f"the virtual board exited (code {code}): {err.decode(errors='replace').strip()[-500:] or 'no message'}"
        )

    def write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise self._dead() from None

    def readline(self, timeout: float) -> bytes | None:
        return self._lines.read_line(timeout, self._read_chunk)

    def _read_chunk(self, remaining: float) -> bytes:
        if self._queue is not None:
            import queue

            try:
                chunk = self._queue.get(timeout=remaining)
            except queue.Empty:
                return b""  # the deadline has passed: read_line returns None
        else:
            r, _, _ = select.select([self._fd], [], [], remaining)
            if not r:
                return b""
            chunk = os.read(self._fd, 65536)
        if not chunk:  # end of file: the process is gone
            self.proc.wait(timeout=5)
            raise self._dead()
        return chunk

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: the virtual board exits cleanly
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass
