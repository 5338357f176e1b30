"""Many loopback TCP connections held open by the test process, for tests of flows at scale."""

from __future__ import annotations

import resource
import selectors
import socket


class OpenConnections:
    """`count` connections on 127.0.0.1, each to a listener of its own, held by this process: one
    client and one server flow each (the client's ephemeral port folds, the listening port does not).
    With `keep_listening`, the listeners stay open, so sock_diag tells the server sockets incoming too:
    a client port can then never make a flow like another connection's server flow."""

    def __init__(self, count: int, keep_listening: bool = False) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = (3 if keep_listening else 2) * count + 256  # and what the test process holds besides
        if soft < needed:
            assert needed <= hard, f"{count} connections need {needed} open files; the limit is {hard}"
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        self.sockets: list[socket.socket] = []
        self.ports: list[int] = []
        clients: list[socket.socket] = []
        selector = selectors.DefaultSelector()
        for _ in range(count):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            self.ports.append(listener.getsockname()[1])
            client = socket.create_connection(("127.0.0.1", self.ports[-1]))
            server, _ = listener.accept()
            if keep_listening:
                self.sockets.append(listener)
            else:
                listener.close()
            client.sendall(b"q")
            server.sendall(b"a" * 10)
            self.sockets += [client, server]
            clients.append(client)
            selector.register(client, selectors.EVENT_READ, data=client)
        waiting = {c.fileno(): 10 for c in clients}
        while waiting:  # every client reads its 10 bytes
            events = selector.select(timeout=10)
            assert events, f"{len(waiting)} clients never got their answer"
            for key, _ in events:
                reader: socket.socket = key.data
                waiting[reader.fileno()] -= len(reader.recv(64))
                if not waiting[reader.fileno()]:
                    del waiting[reader.fileno()]
                    selector.unregister(reader)
        selector.close()

    def close(self) -> None:
        for s in self.sockets:
            s.close()
