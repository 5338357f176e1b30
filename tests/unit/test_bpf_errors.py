"""exporter.bpf.errors: one-line messages, and which errno values mean "the kernel lacks this"."""

from __future__ import annotations

import errno

import pytest

from exporter.bpf import BpfError, NotSupported
from exporter.bpf.errors import ENOTSUPP, errno_reason, error_for_errno


def test_the_kernel_internal_enotsupp_gets_a_readable_reason() -> None:
    assert errno_reason(ENOTSUPP) == "Operation not supported by the kernel"
    assert errno_reason(errno.EACCES) == "Permission denied"


@pytest.mark.parametrize("code", [errno.ENOENT, errno.ESRCH, errno.EOPNOTSUPP, ENOTSUPP])
def test_missing_feature_errnos_become_not_supported(code: int) -> None:
    error = error_for_errno("netflow.bpf.o: load failed", code)
    assert isinstance(error, NotSupported)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EINVAL, errno.EPERM, errno.E2BIG])
def test_other_errnos_stay_plain_bpf_errors(code: int) -> None:
    error = error_for_errno("netflow.bpf.o: load failed", code)
    assert type(error) is BpfError
    assert str(error) == f"netflow.bpf.o: load failed: {errno_reason(code)}"
    assert "\n" not in str(error)

