# syntax=docker/dockerfile:1
# Builder: compiles the CO-RE BPF objects once; the runtime image needs no compiler or headers.
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY bpf/ bpf/
COPY exporter/ exporter/
RUN make bpf

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/netobs
COPY pyproject.toml README.md ./
COPY --from=build /src/exporter/ exporter/
RUN python3 -m venv .venv && .venv/bin/pip install --no-cache-dir . && rm -rf exporter
EXPOSE 10039
ENTRYPOINT ["/opt/netobs/.venv/bin/netobs-exporter"]
