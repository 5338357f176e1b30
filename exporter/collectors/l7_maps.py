"""ctypes mirrors of bpf/l7.h. The collector checks their sizes against the object's BTF."""

from __future__ import annotations

import ctypes

CAPTURE_MAX = 1024
COMM_LEN = 16
OP_LEN = 16
TARGET_LEN = 64
AUTHORITY_LEN = 64
DURATION_BOUNDS = 14
SIZE_BOUNDS = 12
LOST_REASONS = ("conns_full", "series_full", "pipeline_full", "unmatched", "unparsed", "statement_unknown",
                "tls_socket_unknown", "header_unknown")
# enum l7_protocol: kernel number -> (name in Common.IncludeProtocols, db.system.name, "http" or "grpc").
# HTTP enables HTTP/1.x, HTTP/2 and gRPC. 7 (L7_PROTO_HTTP2) marks connections, never series: it is here
# so that HTTP sets its bit of the kernel's `protocols` too.
PROTOCOLS = {1: ("HTTP", "http"), 2: ("REDIS", "redis"), 3: ("PGSQL", "postgresql"), 4: ("MYSQL", "mysql"),
             5: ("MEMCACHED", "memcached"), 6: ("HTTP", "grpc"), 7: ("HTTP", "http")}
DB_OK, DB_ERROR = 1, 2  # enum l7_db_status; 0: no response


class SeriesKey(ctypes.Structure):
    _fields_ = (
        ("server_addr", ctypes.c_uint8 * 16),
        ("start", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("status", ctypes.c_uint32),
        ("server_port", ctypes.c_uint16),
        ("family", ctypes.c_uint16),
        ("protocol", ctypes.c_uint8),
        ("client", ctypes.c_uint8),
        ("version", ctypes.c_uint8),
        ("tls", ctypes.c_uint8),
        ("op", ctypes.c_char * OP_LEN),
        ("target", ctypes.c_char * TARGET_LEN),
        ("authority", ctypes.c_char * AUTHORITY_LEN),
        ("code", ctypes.c_uint8 * OP_LEN),
        ("client_peer", ctypes.c_uint32),  # a server's: the number of its clients' workload, 0: not known
        ("pad", ctypes.c_uint32),
    )


class SeriesStats(ctypes.Structure):
    _fields_ = (
        ("count", ctypes.c_uint64),
        ("sum_ns", ctypes.c_uint64),
        ("buckets", ctypes.c_uint64 * (DURATION_BOUNDS + 1)),
        ("request_bytes", ctypes.c_uint64),
        ("response_bytes", ctypes.c_uint64),
        ("request_body_sum", ctypes.c_uint64),
        ("response_body_sum", ctypes.c_uint64),
        ("request_body_buckets", ctypes.c_uint64 * (SIZE_BOUNDS + 1)),
        ("response_body_buckets", ctypes.c_uint64 * (SIZE_BOUNDS + 1)),
        ("last_ns", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("comm", ctypes.c_char * COMM_LEN),
        ("key", SeriesKey),
    )


MIRRORS = {"l7_series_key": SeriesKey, "l7_series": SeriesStats}
