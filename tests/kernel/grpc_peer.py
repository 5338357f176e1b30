"""A gRPC server and client of grpcio, with generic handlers over raw bytes (no generated code), as two
processes: test_http2.py runs one of each, so that both sides of every call are some process's.

    grpc_peer.py serve PORT                  netobs.test.Echo on 127.0.0.1:PORT until terminated
    grpc_peer.py call PORT KIND=N ...        N calls of each KIND on one channel (one connection), then
                                             one JSON line: {"METHOD STATUS": calls, ..., "messages": n}

KIND is ok, not_found or unavailable (Unary calls, whose request says how the server ends them: the
failures are aborts, sent as Trailers-Only responses) or stream (ServerStream calls of STREAM_MESSAGES
messages, STREAM_GAP seconds apart). The unary calls are all in flight at once: streams of one
connection, multiplexed. With wait=1 the client first makes one OK call, prints {"ready": true} and waits
for a line on stdin; with seq=N it then makes N OK calls one after another."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures

import grpc

SERVICE = "netobs.test.Echo"
STREAM_MESSAGES = 5
STREAM_GAP = 0.05  # seconds between a stream's messages: a ServerStream call lasts at least 4 of them
ABORTS = {b"not_found": grpc.StatusCode.NOT_FOUND, b"unavailable": grpc.StatusCode.UNAVAILABLE}


def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request in ABORTS:
        context.abort(ABORTS[request], request.decode())
    return request


def server_stream(request: bytes, _context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(STREAM_MESSAGES):
        if i:
            time.sleep(STREAM_GAP)
        yield request + b"%d" % i


def serve(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
    }),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def call(port: int, plan: dict[str, int]) -> dict[str, int]:
    done: Counter[str] = Counter()
    # no retries: each call is one stream on the wire
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)]) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        unary_call = channel.unary_unary(f"/{SERVICE}/Unary")
        stream_call = channel.unary_stream(f"/{SERVICE}/ServerStream")
        if plan.pop("wait", 0):  # the connection and its header tables exist before whoever is told
            unary_call(b"ok", timeout=30)
            print(json.dumps({"ready": True}), flush=True)
            sys.stdin.readline()
        for _ in range(plan.pop("seq", 0)):
            unary_call(b"ok", timeout=30)
            done["Unary 0"] += 1
        calls = [unary_call.future(kind.encode(), timeout=30)
                 for kind, n in plan.items() if kind != "stream" for _ in range(n)]
        for future in calls:
            done[f"Unary {future.code().value[0]}"] += 1
        for _ in range(plan.get("stream", 0)):
            replies = stream_call(b"stream", timeout=30)
            done["messages"] += sum(1 for _ in replies)
            done[f"ServerStream {replies.code().value[0]}"] += 1
    return dict(done)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        plan = {kind: int(n) for kind, n in (arg.split("=") for arg in sys.argv[3:])}
        print(json.dumps(call(int(sys.argv[2]), plan)), flush=True)
