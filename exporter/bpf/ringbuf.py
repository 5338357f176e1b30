"""RingBuffer: delivers each record of a BPF ring buffer map to a Python callback."""

from __future__ import annotations

import ctypes
import errno
import logging
from collections.abc import Callable

from exporter.bpf import _libbpf
from exporter.bpf._libbpf import lib
from exporter.bpf.errors import error_for_errno

log = logging.getLogger(__name__)

RecordCallback = Callable[[memoryview | bytes], None]

# Distinct callback failures logged per ring buffer; later ones are dropped to bound memory.
_MAX_REPORTED_FAILURES = 64


class RingBuffer:
    """Consumes one ring buffer map; records are copied, so callbacks may keep them."""

    def __init__(self, map_name: str, map_fd: int, callback: RecordCallback) -> None:
        self.map_name = map_name
        self._callback = callback
        self._reported_failures: set[str] = set()
        # Kept on the instance: libbpf calls this pointer until ring_buffer__free.
        self._sample_fn = _libbpf.RingBufferSampleFn(self._on_sample)
        pointer = lib().ring_buffer__new(map_fd, self._sample_fn, None, None)
        if not pointer:
            raise error_for_errno(f"ring buffer '{map_name}': cannot open", _libbpf.last_errno())
        self._pointer: int | None = pointer

    def poll(self, timeout_ms: int) -> int:
        """Wait up to `timeout_ms` for records and consume them; the number consumed."""
        return self._check(lib().ring_buffer__poll(self._require_open(), timeout_ms), "poll")

    def consume(self) -> int:
        """Consume every record available now without waiting; the number consumed."""
        return self._check(lib().ring_buffer__consume(self._require_open()), "consume")

    def close(self) -> None:
        if self._pointer is not None:
            lib().ring_buffer__free(self._pointer)
            self._pointer = None

    def _on_sample(self, _context: int | None, data: int | None, size: int) -> int:
        record = ctypes.string_at(data, size) if data else b""
        try:
            self._callback(record)
        except Exception as error:  # one bad record must not stop the stream
            message = f"{type(error).__name__}: {error}"
            already_reported = message in self._reported_failures
            if not already_reported and len(self._reported_failures) < _MAX_REPORTED_FAILURES:
                self._reported_failures.add(message)
                log.exception("ring buffer '%s': record callback failed", self.map_name)
        return 0

    def _require_open(self) -> int:
        if self._pointer is None:
            raise error_for_errno(f"ring buffer '{self.map_name}'", errno.EBADF)
        return self._pointer

    def _check(self, result: int, operation: str) -> int:
        if result == -errno.EINTR:
            return 0
        if result < 0:
            raise error_for_errno(f"ring buffer '{self.map_name}': {operation} failed", -result)
        return result

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
