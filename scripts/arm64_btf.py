"""The BTF of a Debian arm64 kernel, for building and checking the BPF objects for arm64 on any machine.

Downloads one pinned linux-image package from Debian (its SHA-256 checked), and takes the kernel's
BTF out of its boot image: an arm64 `Image` is the kernel's memory image, in which the `.BTF` data
lies whole behind its magic and header. The result is cached.

    .venv/bin/python scripts/arm64_btf.py btf            # prints the path of the raw BTF file
    .venv/bin/python scripts/arm64_btf.py vmlinux.h      # writes bpf/include/arm64/vmlinux.h (bpftool)

`make vmlinux-arm64` runs the second; tests/ship/test_arm64.py checks the committed header against it
and every object's CO-RE relocations against the BTF."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache" / "arm64-btf"
# Debian 12 backports' arm64 kernel (6.12), unsigned: the same image as the signed one
PACKAGE = "linux-image-6.12.95+deb12-arm64-unsigned_6.12.95-1~bpo12+1_arm64.deb"
URL = f"http://deb.debian.org/debian/pool/main/l/linux/{PACKAGE}"
SHA256 = "78e1ba9c8b64d4669f48a6f756148aa67212cc83b01dcae87e0648277b03774e"
IMAGE = "./boot/vmlinuz-6.12.95+deb12-arm64"

BTF_MAGIC = 0xEB9F
BTF_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len


class Arm64BtfError(Exception):
    pass


def download() -> bytes:
    CACHE.mkdir(parents=True, exist_ok=True)
    deb = CACHE / PACKAGE
    if not deb.exists():
        with urllib.request.urlopen(URL, timeout=300) as response:
            data = response.read()
        if hashlib.sha256(data).hexdigest() != SHA256:
            raise Arm64BtfError(f"{URL}: SHA-256 is not the pinned one")
        deb.write_bytes(data)
    data = deb.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise Arm64BtfError(f"{deb}: SHA-256 is not the pinned one (delete it to download again)")
    return data


def deb_member(deb: bytes, prefix: str) -> bytes:
    """A member of a .deb (an ar archive) whose name starts with `prefix`."""
    if not deb.startswith(b"!<arch>\n"):
        raise Arm64BtfError("not a .deb (ar archive)")
    pos = 8
    while pos + 60 <= len(deb):
        name = deb[pos:pos + 16].decode().strip().rstrip("/")
        size = int(deb[pos + 48:pos + 58].decode().strip())
        if name.startswith(prefix):
            return deb[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    raise Arm64BtfError(f".deb has no {prefix}* member")


def kernel_image(deb: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(deb_member(deb, "data.tar")), mode="r:*") as tar:
        member = tar.extractfile(IMAGE)
        if member is None:
            raise Arm64BtfError(f"the package has no {IMAGE}")
        return member.read()


def btf_of(image: bytes) -> bytes:
    """The largest well-formed BTF blob in a kernel image: its header, then types, then strings."""
    best = b""
    pos = image.find(struct.pack("<HBB", BTF_MAGIC, 1, 0))
    while pos >= 0:
        if pos + BTF_HEADER.size <= len(image):
            _, _, _, hdr_len, type_off, type_len, str_off, str_len = BTF_HEADER.unpack_from(image, pos)
            end = pos + hdr_len + str_off + str_len
            if (hdr_len == BTF_HEADER.size and type_off == 0 and str_off == type_len and end <= len(image)
                    and image[pos + hdr_len + str_off] == 0 and end - pos > len(best)):
                best = image[pos:end]
        pos = image.find(struct.pack("<HBB", BTF_MAGIC, 1, 0), pos + 1)
    if not best:
        raise Arm64BtfError(f"no BTF in {IMAGE}")
    return best


def btf_path() -> Path:
    path = CACHE / "vmlinux.btf"
    if not path.exists():
        path.write_bytes(btf_of(kernel_image(download())))
    return path


def vmlinux_h() -> str:
    return subprocess.run(["bpftool", "btf", "dump", "file", str(btf_path()), "format", "c"],
                          check=True, capture_output=True, text=True).stdout


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        if what == "btf":
            print(btf_path())
        elif what == "vmlinux.h":
            out = REPO_ROOT / "bpf/include/arm64/vmlinux.h"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(vmlinux_h())
            print(out)
        else:
            raise SystemExit("usage: arm64_btf.py btf|vmlinux.h")
    except (Arm64BtfError, OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"arm64_btf: {e}") from None


if __name__ == "__main__":
    main()
