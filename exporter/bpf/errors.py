"""Errors raised by the libbpf binding, each with a one-line message."""

from __future__ import annotations

import errno
import os

# The kernel's internal "not supported" code; BPF syscalls let it leak to user space.
ENOTSUPP = 524

# Errors meaning the running kernel lacks what was asked for, rather than a bug in the request.
MISSING_FEATURE_ERRNOS = frozenset({errno.ENOENT, errno.ESRCH, errno.EOPNOTSUPP, ENOTSUPP})


class BpfError(Exception):
    """A libbpf or BPF syscall failure; the message is one line, e.g. "x.bpf.o: load failed: ..."."""


class NotSupported(BpfError):
    """The running kernel lacks a feature (a tracepoint, a BTF type, a map type, tracefs...)."""


def errno_reason(err: int) -> str:
    """The one-line text for an errno value, including the kernel-internal ENOTSUPP."""
    if err == ENOTSUPP:
        return "Operation not supported by the kernel"
    return os.strerror(err)


def error_for_errno(context: str, err: int) -> BpfError:
    """`NotSupported` when `err` says a kernel feature is missing, else `BpfError`."""
    error_class = NotSupported if err in MISSING_FEATURE_ERRNOS else BpfError
    return error_class(f"{context}: {errno_reason(err)}")
