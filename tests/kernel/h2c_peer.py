"""An HTTP/2 server that accepts `Upgrade: h2c` (RFC 7540 3.2), for the exporter's kernel tests: nginx,
Go's standard library and gRPC do not upgrade, curl --http2 does.

    python h2c_peer.py PORT

Each connection begins as HTTP/1.1; a request asking to upgrade gets a 101, then its response as HTTP/2
stream 1, and every later request arrives on the same connection as an HTTP/2 stream. Every response is
200 with the path as its body. One thread per connection."""

from __future__ import annotations

import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def respond(conn: h2.connection.H2Connection, stream: int, path: str) -> None:
    body = path.encode()
    conn.send_headers(stream, [(":status", "200"), ("content-length", str(len(body)))])
    conn.send_data(stream, body, end_stream=True)


def serve(sock: socket.socket) -> None:
    with sock:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_upgrade_connection(fields["http2-settings"])
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        respond(conn, 1, path)
        sock.sendall(conn.data_to_send())
        paths: dict[int, str] = {}
        while data := sock.recv(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    paths[event.stream_id] = dict(event.headers)[b":path"].decode()
                elif isinstance(event, h2.events.StreamEnded):
                    respond(conn, event.stream_id, paths.pop(event.stream_id, "/"))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return
            sock.sendall(conn.data_to_send())


def main() -> None:
    listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
