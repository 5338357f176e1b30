#!/usr/bin/env bash
# The build steps of the container image, in one place: the Dockerfile runs them, and
# tests/ship/test_image_build.py runs the very same steps on the host (there is no Docker
# engine on the development machines).
#
#   scripts/build-image.sh build OUT        # in the source tree: compile the BPF objects, build
#                                           # the wheel (objects inside) into OUT
#   scripts/build-image.sh install PREFIX WHEEL
#                                           # a venv at PREFIX with the wheel and its dependencies
#
# "build" needs clang, llvm, make, libbpf-dev and python3-venv (the builder stage); "install"
# needs python3-venv only, and libbpf1 at run time (the runtime stage).
set -euo pipefail

usage() { echo "usage: $0 build OUT | install PREFIX WHEEL" >&2; exit 2; }

build() {
  local out=$1
  mkdir -p "$out"
  make --no-print-directory bpf >/dev/null
  local objects
  objects=$(find exporter/bpf/objects -name '*.bpf.o' | wc -l)
  [ "$objects" -gt 0 ] || { echo "build-image: no BPF objects were built" >&2; exit 1; }
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
  local prefix=$1 wheel=$2
  python3 -m venv "$prefix"
  "$prefix/bin/pip" install -q --disable-pip-version-check --no-cache-dir "$wheel"
  "$prefix/bin/netobs-exporter" --version
}

case "${1:-}" in
  build) [ $# -eq 2 ] || usage; build "$2" ;;
  install) [ $# -eq 3 ] || usage; install "$2" "$3" ;;
  *) usage ;;
esac
