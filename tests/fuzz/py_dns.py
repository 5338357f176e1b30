"""atheris target: the DNS wire parser and the DNS-over-TCP framer (exporter/collectors/dns_wire.py).

Any bytes, whole or cut short, and any split of a TCP stream into reads of any captured size: the
parser answers a Message or None, the framer a list of messages; neither ever raises."""

import sys

import atheris

with atheris.instrument_imports():
    from exporter.collectors.dns_wire import TcpFramer, parse


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cut = fdp.ConsumeBool()
    capture = fdp.ConsumeIntInRange(0, 1100)
    splits = [fdp.ConsumeIntInRange(0, 300) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    extra = [fdp.ConsumeIntInRange(0, 3) for _ in splits]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    parse(stream, cut=cut)
    framer = TcpFramer(capture)
    at = 0
    for size, more in zip([*splits, len(stream)], [*extra, 0], strict=True):
        chunk = stream[at:at + size]
        at += size
        for framed in framer.feed(chunk, len(chunk) + more):  # `more` bytes went by uncaptured
            parse(framed.data, cut=len(framed.data) < framed.length)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
