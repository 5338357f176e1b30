# syntax=docker/dockerfile:1
# netobs-exporter image. Both stages run scripts/build-image.sh, the same steps that
# tests/ship/test_image_build.py runs without Docker. Build it with
#   scripts/build-image.sh image -t netobs-exporter [--platform linux/amd64]
# which is docker build with the version, commit and commit date for the image's labels.
# The Python dependencies are those of requirements.lock, checked against its hashes;
# `scripts/build-image.sh lock` regenerates it after a change to pyproject.toml's dependencies.
#
# Capabilities at run time (docs/install.md says which feature needs which): CAP_BPF and
# CAP_PERFMON always; CAP_NET_ADMIN for netflow and dns (cgroup hooks); CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH to see other users' processes in
# /proc; CAP_SYS_ADMIN only for the bash audit (uprobes). The chart runs it as uid 0 with every
# other capability dropped: Kubernetes gives a non-root user no ambient capabilities.
#   docker run --pid=host --network=host --cap-drop=ALL --cap-add=BPF --cap-add=PERFMON \
#     --cap-add=NET_ADMIN --cap-add=SYS_PTRACE --cap-add=DAC_READ_SEARCH -v /sys/kernel/tracing:/sys/kernel/tracing:ro \
#     netobs-exporter --config.set Bash.Enabled=false

# Builder: compiles the CO-RE BPF objects for TARGETARCH and builds the wheel that carries them.
# BPF bytecode and a pure-Python wheel are the same whichever machine makes them, so it runs on the
# build machine's platform, not under emulation.
FROM --platform=$BUILDPLATFORM debian:12 AS build
# Not pinned (DL3008): bookworm's security updates replace package versions, so pins would break
# the build at the next point release; the base image tag is what fixes the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev make python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile pyproject.toml README.md LICENSE ./
COPY scripts/build-image.sh scripts/
COPY bpf/ bpf/
COPY exporter/ exporter/
# amd64 or arm64, set by docker build; the script says when an architecture has no vmlinux.h yet.
ARG TARGETARCH
RUN scripts/build-image.sh build /dist

# Runtime: Python, libbpf and the package; no compiler, no kernel headers.
FROM debian:12-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/build-image.sh requirements.lock /usr/local/lib/netobs/
COPY --from=build /dist/ /tmp/dist/
RUN /usr/local/lib/netobs/build-image.sh install /opt/netobs /usr/local/lib/netobs/requirements.lock \
      /tmp/dist/netobs_exporter-*.whl \
 && rm -rf /tmp/dist
ENV PATH=/opt/netobs/bin:$PATH PYTHONDONTWRITEBYTECODE=1
EXPOSE 10039
ENTRYPOINT ["netobs-exporter"]

# Last, so that a new commit does not rebuild the layers above. scripts/build-image.sh image passes
# the build arguments; a plain docker build leaves those labels empty.
ARG VERSION REVISION CREATED SOURCE
LABEL org.opencontainers.image.title="netobs-exporter" \
      org.opencontainers.image.description="eBPF network-observability exporter: netflow, DNS, L7 and bash audit as OpenTelemetry metrics and logs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
