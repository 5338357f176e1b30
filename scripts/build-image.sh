#!/usr/bin/env bash
# The build steps of the container image, in one place: the Dockerfile runs them, and
# tests/ship/test_image_build.py runs the very same steps on the host (there is no Docker
# engine on the development machines).
#
#   scripts/build-image.sh image [DOCKER BUILD FLAGS]
#                                           # docker build of this repository, with the version,
#                                           # commit and commit date that the image's labels carry
#   scripts/build-image.sh build OUT        # in the source tree: compile the BPF objects for
#                                           # TARGETARCH, build the wheel (objects inside) into OUT
#   scripts/build-image.sh install PREFIX LOCK WHEEL
#                                           # a venv at PREFIX with the dependencies pinned in LOCK
#                                           # (hashes checked) and the wheel
#   scripts/build-image.sh lock [PIP-COMPILE FLAGS]
#                                           # regenerate requirements.lock from pyproject.toml
#                                           # (--upgrade moves every pin to the newest release)
#
# TARGETARCH is the image's architecture as Docker names it (amd64, arm64); docker build sets it,
# and it defaults to this machine's. "build" needs clang, llvm, make, libbpf-dev and python3-venv
# (the builder stage); "install" needs python3-venv only, and libbpf1 at run time (the runtime
# stage); "lock" needs Python 3.11, the image's, and PyPI.
set -euo pipefail

usage() { echo "usage: $0 image [FLAGS] | build OUT | install PREFIX LOCK WHEEL | lock [FLAGS]" >&2; exit 2; }
fail() { echo "build-image: $*" >&2; exit 1; }

image() {
  cd "$(dirname "$0")/.."
  # pyproject.toml takes its version from exporter.__version__.
  local version revision created epoch
  version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' exporter/__init__.py)
  [ -n "$version" ] || fail "no __version__ in exporter/__init__.py"
  revision=$(git rev-parse HEAD)
  git diff --quiet HEAD || echo "build-image: uncommitted changes are not in revision $revision" >&2
  # The commit's date, not the clock's: the same commit makes the same labels.
  epoch=$(git log -1 --format=%ct)
  created=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
  # SOURCE_DATE_EPOCH: BuildKit dates the image by it too.
  docker build --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --build-arg CREATED="$created" --build-arg SOURCE_DATE_EPOCH="$epoch" \
    --build-arg SOURCE="$(source_url)" "$@" .
}

# origin's address as https://host/path, the page a person opens; never a user name or token.
# Empty when there is no origin, or it is a local path or names a port.
source_url() {
  local url
  url=$(git config --get remote.origin.url) || return 0
  url=${url%/}
  sed -nE 's#^(https://|ssh://)?([^@/]*@)?([^/:]+\.[^/:]+)[:/]([^0-9/].*)$#https://\3/\4#p' <<<"${url%.git}"
}

# Makefile's ARCH (libbpf's __TARGET_ARCH_ name, the folder of vmlinux.h) for a Docker architecture.
bpf_arch() {
  case $1 in
    amd64) echo x86 ;;
    arm64) echo arm64 ;;
    *) fail "no BPF build for architecture $1: amd64 or arm64" ;;
  esac
}

host_arch() {
  case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
  esac
}

build() {
  local out=$1 target=${TARGETARCH:-$(host_arch)} arch
  arch=$(bpf_arch "$target")
  [ -f "bpf/include/$arch/vmlinux.h" ] ||
    fail "bpf/include/$arch/vmlinux.h does not exist yet: the BPF objects cannot be built for $target"
  mkdir -p "$out"
  # Every object anew: those in exporter/bpf/objects may be another architecture's.
  make --no-print-directory --always-make ARCH="$arch" bpf >/dev/null
  local objects
  objects=$(find exporter/bpf/objects -name '*.bpf.o' | wc -l)
  [ "$objects" -gt 0 ] || fail "no BPF objects were built"
  # A throw-away venv: the wheel is built the same way on a bare builder and on a dev machine.
  local venv
  venv=$(mktemp -d)
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check build >/dev/null
  "$venv/bin/python" -m build -q --wheel --outdir "$out" . >/dev/null
  rm -rf "$venv" build ./*.egg-info
  ls "$out"/*.whl
}

install() {
  local prefix=$1 lock=$2 wheel=$3
  local pip=("$prefix/bin/pip" --disable-pip-version-check --no-cache-dir)
  python3 -m venv "$prefix"
  # Every dependency, transitive ones too, as the lock pins it: pip refuses a package that the
  # lock does not pin or whose download does not match a hash. Wheels only: there is no compiler.
  "${pip[@]}" install -q --require-hashes --only-binary :all: -r "$lock"
  "${pip[@]}" install -q --no-deps "$wheel"
  # What the wheel asks for is what the lock gave, or the lock is stale.
  local broken
  broken=$("${pip[@]}" check) || fail "$lock does not satisfy the wheel: $broken"
  "$prefix/bin/netobs-exporter" --version
}

lock() {
  cd "$(dirname "$0")/.."
  python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    fail "the image runs Python 3.11: lock with it, not $(python3 --version)"
  local venv
  venv=$(mktemp -d)
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check pip-tools
  # Hashes of every file of each release (every platform's wheels), and no index or wheel folder
  # of this machine written into the lock.
  CUSTOM_COMPILE_COMMAND="scripts/build-image.sh lock" "$venv/bin/pip-compile" -q --generate-hashes \
    --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
    --output-file requirements.lock "$@" pyproject.toml
  rm -rf "$venv"
}

case "${1:-}" in
  image) shift; image "$@" ;;
  build) [ $# -eq 2 ] || usage; build "$2" ;;
  install) [ $# -eq 4 ] || usage; install "$2" "$3" "$4" ;;
  lock) shift; lock "$@" ;;
  *) usage ;;
esac
