# The obvious targets. `make run` and `make test` set up everything they need on Debian 12 (as root).
SHELL := /bin/bash
PY    := .venv/bin/python
# The BPF objects' architecture, x86 or arm64: `make bpf ARCH=arm64 BPF_OUT=dir` builds arm64's elsewhere.
ARCH  := x86
BPF_OUT := exporter/bpf/objects
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(patsubst bpf/%.bpf.c,$(BPF_OUT)/%.bpf.o,$(BPF_SRC))
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Ibpf/include -Ibpf/include/$(ARCH)
ARGS ?=
FLOOR_OUT ?= /tmp/netobs-floors

.PHONY: all setup setup-test setup-bench bpf floors run test test-unit test-kernel test-ship lint bench bench-scale fuzz check-config vmlinux vmlinux-arm64 clean ship-files

all: bpf

setup:
	@scripts/setup.sh run

setup-test:
	@scripts/setup.sh test

# The benchmarks' plots need matplotlib, which neither the exporter nor its tests do.
setup-bench: setup-test
	@.venv/bin/python -c "import matplotlib" 2>/dev/null || .venv/bin/pip install -q -e '.[test,bench]'

bpf: $(BPF_OBJ)

$(BPF_OUT)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h bpf/*.c bpf/include/*.h) bpf/include/$(ARCH)/vmlinux.h
	@mkdir -p $(@D)
	clang $(BPF_CFLAGS) -c $< -o $@
	llvm-strip -g --keep-section=.BTF --keep-section=.BTF.ext $@ 2>/dev/null || true

# bench/floor.bpf.c's two builds of the socket object, for bench/churn_floor.py: FLOOR_OUT/nothing and
# FLOOR_OUT/least, each a sockets.bpf.o beside the real bash.bpf.o.
floors: $(BPF_OUT)/bash.bpf.o
	@for floor in nothing least; do \
		mkdir -p $(FLOOR_OUT)/$$floor && \
		clang $(BPF_CFLAGS) -Ibpf -DFLOOR_$${floor^^} -c bench/floor.bpf.c -o $(FLOOR_OUT)/$$floor/sockets.bpf.o && \
		cp $(BPF_OUT)/bash.bpf.o $(FLOOR_OUT)/$$floor/ || exit 1; \
	done

run: setup
	@$(MAKE) --no-print-directory bpf
	$(PY) -m exporter $(ARGS)

test: setup-test
	@$(MAKE) --no-print-directory bpf
	$(PY) -m pytest tests $(ARGS)

test-unit: setup-test
	$(PY) -m pytest tests/unit $(ARGS)

test-kernel: setup-test bpf
	$(PY) -m pytest tests/kernel $(ARGS)

test-ship: setup-test
	$(PY) -m pytest tests/ship $(ARGS)

lint: setup-test
	.venv/bin/ruff check exporter tests bench scripts dashboards
	.venv/bin/mypy

# Every fuzz target for 10 minutes (the tests run each for 30 s); see tests/fuzz/run.py, docs/benchmarks.md.
fuzz: setup-test
	$(PY) tests/fuzz/run.py --seconds 600 $(ARGS)

check-config: setup bpf
	$(PY) -m exporter --check-config $(ARGS)

bench: setup-test bpf
	$(PY) bench/netflow_bench.py $(ARGS)

# Scrape and push cost against the number of flows; writes docs/scale.png (see docs/benchmarks.md).
bench-scale: setup-bench bpf
	$(PY) bench/scale_bench.py --plot docs/scale.png $(ARGS)

# Regenerates the committed vmlinux.h from the running kernel's BTF (see bpf/include/README.md).
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/$(ARCH)/vmlinux.h

# Regenerates bpf/include/arm64/vmlinux.h from a pinned Debian arm64 kernel package (scripts/arm64_btf.py).
vmlinux-arm64: setup-test
	$(PY) scripts/arm64_btf.py vmlinux.h

# Rewrites the files derived from others: dashboards/*.json, the chart's copies, alerts/netobs-rules.yaml.
ship-files: setup-test
	$(PY) scripts/ship_files.py

clean:
	rm -f exporter/bpf/objects/*.o
