"""The series table as Prometheus text (format 0.0.4) and OpenMetrics 1.0, plain or gzip.

Names follow the OpenTelemetry specification's Prometheus compatibility rules, as the OpenTelemetry
Prometheus exporter applies them: dots become `_`, the unit is appended (`By` -> `_bytes`, `s` ->
`_seconds`; annotations in braces such as `{packet}` add nothing; a name that already ends with its
unit does not get it twice), monotonic counters get `_total`, up-down counters are gauges. Labels
are the series' attributes with their names sanitised, sorted, and a point's own attributes
(network.io.direction, le) last.

The text is made of pages: one per block of series (exporter/telemetry/table.py) and instrument.
A page is rendered again only when the block's version for that instrument changed, and compressed
on its own (raw deflate, ended with a sync flush), so a gzip body is the pages' compressed bytes one
after the other, framed once: what changed since the last scrape is all that is rendered and
compressed again. The same pages serve both formats; only the family headers differ. Only gzip
bodies are kept between scrapes; a plain one is inflated from the pages when asked for."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from exporter.series.instruments import Instrument
from exporter.series.rows import Attributes, HistogramValue
from exporter.telemetry.table import Block, Series, SeriesTable, View

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
COMPRESSION_LEVEL = 1  # the text repeats itself so much that level 1 already compresses it ~25 times

_UNITS = {"d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
          "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes",
          "GiBy": "gibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "m": "meters",
          "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius",
          "Hz": "hertz", "1": "", "%": "percent"}
_TYPES = {"counter": "counter", "updowncounter": "gauge", "gauge": "gauge", "histogram": "histogram"}
_NAME_INVALID = re.compile(r"[^a-zA-Z0-9:]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")


_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def unit_suffix(unit: str) -> str:
    unit = re.sub(r"\{.*\}", "", unit)
    if unit in _UNITS:
        return _UNITS[unit]
    top, slash, bottom = unit.partition("/")
    if slash and bottom:
        return f"{_UNITS.get(top, top)}_per_{_PER_UNITS.get(bottom, bottom)}"
    return _NAME_INVALID.sub("_", unit).strip("_")


def metric_name(instrument: Instrument) -> str:
    """The family name, without the `_total` of a counter's samples."""
    name = _NAME_INVALID.sub("_", instrument.name)
    if name[:1].isdigit():
        name = "_" + name
    suffix = unit_suffix(instrument.unit)
    if suffix and not name.endswith("_" + suffix):
        name += "_" + suffix
    return name


def label_name(attribute: str) -> str:
    name = _LABEL_INVALID.sub("_", attribute)
    return "_" + name if name[:1].isdigit() else name


def escape_value(value: str | int) -> str:
    text = value if isinstance(value, str) else ("true" if value is True else "false" if value is False else str(value))
    if "\\" in text or '"' in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def labels(attributes: Attributes) -> str:
    """`a="x",b="y"`: the label block of attributes, names sanitised and sorted."""
    by_name = {label_name(k): escape_value(v) for k, v in attributes}
    return ",".join(f'{k}="{v}"' for k, v in sorted(by_name.items()))


def number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def go_float(value: float) -> str:
    """A bucket bound as the Prometheus client libraries write it: `le="0.005"`, `le="2.5e-05"`,
    `le="1.0"`, `le="6.7108864e+07"` (Go switches to an exponent sooner than Python)."""
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text


@functools.lru_cache(maxsize=256)
def extra_labels(extra: Attributes) -> str:
    return labels(extra)


@dataclass(frozen=True)
class Family:
    """How one instrument is written: its sample names and its two headers."""

    instrument: Instrument
    name: str
    sample: str  # the name of a counter's or gauge's samples
    text_header: bytes
    openmetrics_header: bytes
    le: tuple[str, ...]  # histograms: the bucket bounds as label values, +Inf included

    @classmethod
    def of(cls, instrument: Instrument) -> Family:
        name = metric_name(instrument)
        kind = _TYPES[instrument.kind]
        help_text = instrument.description.replace("\\", "\\\\").replace("\n", "\\n")
        text_name = name + "_total" if kind == "counter" else name
        text = f"# HELP {text_name} {help_text}\n# TYPE {text_name} {kind}\n"
        openmetrics = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        le = (*(go_float(b) for b in instrument.bounds), "+Inf") if kind == "histogram" else ()
        return cls(instrument, name, text_name, text.encode(), openmetrics.encode(), le)


class Page:
    """The rendered lines of one instrument for one block, kept compressed only (the text is ~25 times
    larger): a gzip scrape uses the compressed bytes as they are, a plain one inflates them."""

    __slots__ = ("crc", "deflated", "length", "samples", "version")

    def __init__(self, text: bytes, samples: int, version: int) -> None:
        self.samples = samples
        self.version = version
        self.crc = zlib.crc32(text)
        self.length = len(text)
        self.deflated = deflate(text)

    @property
    def text(self) -> bytes:
        return zlib.decompressobj(-15).decompress(self.deflated)


def deflate(data: bytes) -> bytes:
    """Raw deflate that can be followed by more: a fresh stream, ended with a sync flush."""
    compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


class Renderer:
    def __init__(self, table: SeriesTable, target_info: Mapping[str, str | int] | None = None) -> None:
        self.table = table
        self._families = {name: Family.of(i) for name, i in table.plan.instruments.items()}
        info = labels(tuple((target_info or {}).items()))
        self._target_info = {
            False: Page(f"# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{{{info}}} 1\n"
                        .encode(), 1, 0),
            True: Page(f"# HELP target Target metadata\n# TYPE target info\ntarget_info{{{info}}} 1\n"
                       .encode(), 1, 0),
        } if target_info is not None else None
        self._headers: dict[tuple[str, bool], Page] = {}
        self._eof = Page(b"# EOF\n", 0, 0)
        self._bodies: dict[bool, tuple[int, bytes]] = {}  # openmetrics -> (table version, gzip body)

    def render(self, openmetrics: bool = False, gzip: bool = False) -> bytes:
        """The whole exposition; the same collection renders once per format."""
        cached = self._bodies.get(openmetrics)
        if cached is None or cached[0] != self.table.version:
            cached = self._bodies[openmetrics] = (self.table.version, gzip_body(list(self._pages(openmetrics))))
        return cached[1] if gzip else zlib.decompress(cached[1], wbits=31)

    def _pages(self, openmetrics: bool) -> Iterator[Page]:
        for name in self.table.instruments():
            family = self._families[name]
            pages = [page for view, js in self.table.contributions(name) for block in view.blocks
                     if (page := self._page(family, view, js, block)).samples]
            if pages:
                yield self._header(family, openmetrics)
                yield from pages
        if self._target_info is not None:
            yield self._target_info[openmetrics]
        if openmetrics:
            yield self._eof

    def _header(self, family: Family, openmetrics: bool) -> Page:
        key = (family.instrument.name, openmetrics)
        page = self._headers.get(key)
        if page is None:
            page = self._headers[key] = Page(family.openmetrics_header if openmetrics else family.text_header, 0, 0)
        return page

    def _page(self, family: Family, view: View, js: tuple[int, ...], block: Block) -> Page:
        version = block.versions.get(family.instrument.name, 0)
        key = ("prometheus", family.instrument.name)
        page: Page | None = block.cache.get(key)
        if page is None or page.version != version:
            lines: list[str] = []
            for series in block.series:
                self._lines(lines, family, view, js, series)
            page = block.cache[key] = Page("".join(lines).encode(), len(lines), version)
        return page

    def _lines(self, out: list[str], family: Family, view: View, js: tuple[int, ...], series: Series) -> None:
        base = series.cache.get("labels")
        if base is None:
            base = series.cache["labels"] = labels(series.attributes)
        values, admitted, sample = series.values, series.admitted, family.sample
        for j in js:
            value = values[j]
            if value is None or not admitted >> j & 1:
                continue
            extra = view.points[j].extra
            block = f"{base},{extra_labels(extra)}" if extra and base else extra_labels(extra) if extra else base
            if isinstance(value, HistogramValue):
                histogram_lines(out, family, block, value)
            elif block:
                out.append(f"{sample}{{{block}}} {number(value)}\n")
            else:
                out.append(f"{sample} {number(value)}\n")


def histogram_lines(out: list[str], family: Family, block: str, value: HistogramValue) -> None:
    prefix = f"{family.name}_bucket{{{block}," if block else f"{family.name}_bucket{{"
    total = 0
    for le, n in zip(family.le, value.bucket_counts, strict=True):
        total += n
        out.append(f'{prefix}le="{le}"}} {total}\n')
    braces = f"{{{block}}}" if block else ""
    out.append(f"{family.name}_count{braces} {value.count}\n")
    out.append(f"{family.name}_sum{braces} {number(value.sum)}\n")


# ---------------------------------------------------------------------------- gzip framing

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time, unknown OS
_FINAL_BLOCK = b"\x03\x00"  # an empty final block, fixed Huffman codes


def _crc32_combine() -> ctypes._NamedFuncPointer | None:
    try:
        libz = ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1")
        combine = libz.crc32_combine64
    except (OSError, AttributeError):
        return None
    combine.restype = ctypes.c_ulong
    combine.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64)
    return combine


_COMBINE = _crc32_combine()


def gzip_body(pages: list[Page]) -> bytes:
    """One gzip member whose deflate stream is the pages' own compressed streams, one after the other."""
    length = sum(p.length for p in pages)
    crc = 0
    for page in pages:
        crc = _COMBINE(crc, page.crc, page.length) if _COMBINE is not None else zlib.crc32(page.text, crc)
    trailer = struct.pack("<II", crc & 0xFFFFFFFF, length & 0xFFFFFFFF)
    return b"".join((_GZIP_HEADER, *(p.deflated for p in pages), _FINAL_BLOCK, trailer))


def negotiate(accept: str) -> bool:
    """Whether to answer in OpenMetrics: when the client prefers it (by q-value) to the text format."""
    best_openmetrics = best_text = -1.0
    for media_range in accept.split(","):
        media, *params = (part.strip() for part in media_range.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media == "application/openmetrics-text":
            best_openmetrics = max(best_openmetrics, q)
        elif media in ("text/plain", "text/*", "*/*"):
            best_text = max(best_text, q)
    return best_openmetrics > 0 and best_openmetrics >= best_text


def accepts_gzip(accept_encoding: str) -> bool:
    for coding in accept_encoding.split(","):
        name, *params = (part.strip() for part in coding.split(";"))
        if name.lower() in ("gzip", "*"):
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
    return False
