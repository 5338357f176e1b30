"""BpfMap: typed reads and writes of one loaded BPF map through its file descriptor.

Keys and values are ctypes instances whose size must equal the map's key and value size.
Per-CPU maps (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH) hold one value per possible CPU:
for them `value_type` names the per-CPU element type and `lookup`/`items` return a list with one
value per possible CPU (see `percpu_lookup`/`percpu_items` for the precisely typed spellings).
"""

from __future__ import annotations

import ctypes
import errno
import functools
from typing import TYPE_CHECKING, TypeVar, cast

from exporter.bpf import _libbpf
from exporter.bpf._libbpf import lib
from exporter.bpf.errors import ENOTSUPP, BpfError, error_for_errno

if TYPE_CHECKING:
    # The common base of ctypes.Structure, ctypes._SimpleCData and ctypes.Array.
    from _ctypes import _CData as CValue

K = TypeVar("K", bound="CValue")
V = TypeVar("V", bound="CValue")
T = TypeVar("T", bound="CValue")

_BATCH_UNSUPPORTED_ERRNOS = frozenset({errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP})
_FIRST_BATCH_ENTRIES = 256
_LARGEST_BATCH_ENTRIES = 4096  # later batches grow to this: fewer calls, buffers of a few MB at most

# Map types whose kernel rejected bpf_map_lookup_batch; those are read key by key from then on.
_batch_unsupported_map_types: set[int] = set()


def _copy_from(buffer: ctypes.Array[ctypes.c_char], offset: int, ctype: type[T]) -> T:
    value = ctype()
    ctypes.memmove(ctypes.addressof(value), ctypes.addressof(buffer) + offset, ctypes.sizeof(ctype))
    return value


@functools.cache
def possible_cpus() -> int:
    count = lib().libbpf_num_possible_cpus()
    if count < 0:
        raise error_for_errno("cannot count possible CPUs", -count)
    return int(count)


class BpfMap:
    """One map of a loaded `BpfObject`; valid until that object is closed."""

    def __init__(
        self, name: str, fd: int, key_size: int, value_size: int, max_entries: int, map_type: int
    ) -> None:
        self.name = name
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.map_type = map_type

    @classmethod
    def from_libbpf(cls, map_pointer: int) -> BpfMap:
        libbpf = lib()
        return cls(
            name=_libbpf.decode(libbpf.bpf_map__name(map_pointer)),
            fd=libbpf.bpf_map__fd(map_pointer),
            key_size=libbpf.bpf_map__key_size(map_pointer),
            value_size=libbpf.bpf_map__value_size(map_pointer),
            max_entries=libbpf.bpf_map__max_entries(map_pointer),
            map_type=libbpf.bpf_map__type(map_pointer),
        )

    @property
    def is_percpu(self) -> bool:
        return self.map_type in _libbpf.PERCPU_MAP_TYPES

    @property
    def _percpu_stride(self) -> int:
        return (self.value_size + 7) // 8 * 8

    @property
    def _value_buffer_size(self) -> int:
        """Bytes the kernel reads or writes for one value of this map."""
        if self.is_percpu:
            return self._percpu_stride * possible_cpus()
        return self.value_size

    def lookup(self, key: CValue, value_type: type[V]) -> V | None:
        """The value under `key`, or None; a per-CPU map returns one value per CPU (a list)."""
        values = self._lookup_raw(key, value_type)
        if values is None:
            return None
        return cast(V, values) if self.is_percpu else values[0]

    def percpu_lookup(self, key: CValue, value_type: type[V]) -> list[V] | None:
        self._require_percpu()
        return self._lookup_raw(key, value_type)

    def update(self, key: CValue, value: CValue, flags: int = 0) -> None:
        """Set `key` to `value`; for a per-CPU map `value` holds every CPU's 8-byte-aligned slot."""
        self._check_key(key)
        if ctypes.sizeof(value) != self._value_buffer_size:
            raise BpfError(
                f"map '{self.name}': value is {ctypes.sizeof(value)} bytes, "
                f"map needs {self._value_buffer_size}"
            )
        result = lib().bpf_map_update_elem(self.fd, ctypes.byref(key), ctypes.byref(value), flags)
        if result < 0:
            raise error_for_errno(f"map '{self.name}': update failed", -result)

    def delete(self, key: CValue) -> bool:
        """Remove `key`; False when it was not there."""
        self._check_key(key)
        result = lib().bpf_map_delete_elem(self.fd, ctypes.byref(key))
        if result == -errno.ENOENT:
            return False
        if result < 0:
            raise error_for_errno(f"map '{self.name}': delete failed", -result)
        return True

    def keys(self, key_type: type[K]) -> list[K]:
        """Every key, walked with get_next_key (a hash walk restarts if its cursor key is deleted)."""
        self._check_size("key", key_type, self.key_size)
        found: dict[bytes, K] = {}
        current: K | None = None
        for _ in range(2 * self.max_entries + 1):
            following = key_type()
            cursor = ctypes.byref(current) if current is not None else None
            result = lib().bpf_map_get_next_key(self.fd, cursor, ctypes.byref(following))
            if result == -errno.ENOENT:
                break
            if result < 0:
                raise error_for_errno(f"map '{self.name}': get_next_key failed", -result)
            found.setdefault(bytes(following), following)
            current = following
        return list(found.values())

    def items(self, key_type: type[K], value_type: type[V]) -> list[tuple[K, V]]:
        """Every (key, value); a per-CPU map gives one value per CPU (a list) for each key."""
        entries = self._items_raw(key_type, value_type)
        if self.is_percpu:
            return cast(list[tuple[K, V]], entries)
        return [(key, values[0]) for key, values in entries]

    def raw_items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, value) as the kernel's bytes, read in batches: for callers that decode many
        entries themselves (struct is much cheaper than a ctypes object per entry). Not for per-CPU maps."""
        if self.is_percpu:
            raise BpfError(f"map '{self.name}': raw_items reads one value per key, not per CPU")
        if self.map_type not in _batch_unsupported_map_types:
            entries = self._raw_batches()
            if entries is not None:
                return entries
        key_type = ctypes.c_char * self.key_size
        out = []
        for key in self.keys(key_type):
            buffer = ctypes.create_string_buffer(self.value_size)
            result = lib().bpf_map_lookup_elem(self.fd, ctypes.byref(key), buffer)
            if result == 0:  # else deleted since the key walk
                out.append((bytes(key), buffer.raw))
        return out

    def percpu_items(self, key_type: type[K], value_type: type[V]) -> list[tuple[K, list[V]]]:
        self._require_percpu()
        return self._items_raw(key_type, value_type)

    def _items_raw(self, key_type: type[K], value_type: type[V]) -> list[tuple[K, list[V]]]:
        self._check_size("key", key_type, self.key_size)
        self._check_size("value", value_type, self.value_size)
        if self.map_type not in _batch_unsupported_map_types:
            entries = self._items_by_batch(key_type, value_type)
            if entries is not None:
                return entries
        entries = []
        for key in self.keys(key_type):
            values = self._lookup_raw(key, value_type)
            if values is not None:  # deleted since the key walk
                entries.append((key, values))
        return entries

    def _items_by_batch(self, key_type: type[K], value_type: type[V]) -> list[tuple[K, list[V]]] | None:
        """Read with bpf_map_lookup_batch; None when the kernel cannot batch this map type."""
        batches = self._batches()
        if batches is None:
            return None
        entries: list[tuple[K, list[V]]] = []
        for keys, values, count in batches:
            for index in range(count):
                key = _copy_from(keys, index * self.key_size, key_type)
                value_offset = index * self._value_buffer_size
                entries.append((key, self._decode_values(values, value_offset, value_type)))
        return entries

    def _raw_batches(self) -> list[tuple[bytes, bytes]] | None:
        batches = self._batches()
        if batches is None:
            return None
        out = []
        ks, vs = self.key_size, self.value_size
        for keys, values, count in batches:
            key_bytes, value_bytes = keys.raw, values.raw
            out += [(key_bytes[i * ks:(i + 1) * ks], value_bytes[i * vs:(i + 1) * vs]) for i in range(count)]
        return out

    def _batches(self) -> list[tuple[ctypes.Array[ctypes.c_char], ctypes.Array[ctypes.c_char], int]] | None:
        """The map's entries as (keys buffer, values buffer, count) batches from bpf_map_lookup_batch;
        None (and the map type remembered) when the kernel cannot batch this map type."""
        batch_entries = min(max(self.max_entries, 1), _FIRST_BATCH_ENTRIES)
        cursor_size = max(self.key_size, 8)  # hash maps use a u32 bucket cursor, arrays a key
        in_cursor = ctypes.create_string_buffer(cursor_size)
        out_cursor = ctypes.create_string_buffer(cursor_size)
        options = _libbpf.BpfMapBatchOpts(sz=ctypes.sizeof(_libbpf.BpfMapBatchOpts))
        batches = []
        keys, values = self._batch_buffers(batch_entries)
        first_call = True
        while True:
            count = ctypes.c_uint32(batch_entries)
            result = lib().bpf_map_lookup_batch(
                self.fd,
                None if first_call else in_cursor,
                out_cursor,
                keys,
                values,
                ctypes.byref(count),
                ctypes.byref(options),
            )
            error = -result if result < 0 else 0
            if error == errno.ENOSPC and count.value == 0:  # one hash bucket holds more than fits
                batch_entries *= 2
                keys, values = self._batch_buffers(batch_entries)
                continue
            if first_call and error in _BATCH_UNSUPPORTED_ERRNOS:
                _batch_unsupported_map_types.add(self.map_type)
                return None
            if error not in (0, errno.ENOENT):
                raise error_for_errno(f"map '{self.name}': lookup_batch failed", error)
            if count.value:
                batches.append((keys, values, count.value))
            if error == errno.ENOENT:
                return batches
            ctypes.memmove(in_cursor, out_cursor, cursor_size)
            first_call = False
            batch_entries = min(batch_entries * 4, max(self.max_entries, 1), _LARGEST_BATCH_ENTRIES)
            keys, values = self._batch_buffers(batch_entries)

    def _batch_buffers(self, entries: int) -> tuple[ctypes.Array[ctypes.c_char], ctypes.Array[ctypes.c_char]]:
        return (
            ctypes.create_string_buffer(self.key_size * entries),
            ctypes.create_string_buffer(self._value_buffer_size * entries),
        )

    def _lookup_raw(self, key: CValue, value_type: type[V]) -> list[V] | None:
        self._check_key(key)
        self._check_size("value", value_type, self.value_size)
        buffer = ctypes.create_string_buffer(self._value_buffer_size)
        result = lib().bpf_map_lookup_elem(self.fd, ctypes.byref(key), buffer)
        if result == -errno.ENOENT:
            return None
        if result < 0:
            raise error_for_errno(f"map '{self.name}': lookup failed", -result)
        return self._decode_values(buffer, 0, value_type)

    def _decode_values(
        self, buffer: ctypes.Array[ctypes.c_char], offset: int, value_type: type[V]
    ) -> list[V]:
        if not self.is_percpu:
            return [_copy_from(buffer, offset, value_type)]
        stride = self._percpu_stride
        return [_copy_from(buffer, offset + cpu * stride, value_type) for cpu in range(possible_cpus())]

    def _check_key(self, key: CValue) -> None:
        self._check_size("key", type(key), self.key_size)

    def _check_size(self, role: str, ctype: type[CValue], expected: int) -> None:
        if ctypes.sizeof(ctype) != expected:
            raise BpfError(
                f"map '{self.name}': {role} type {ctype.__name__} is {ctypes.sizeof(ctype)} bytes, "
                f"map has {expected}"
            )

    def _require_percpu(self) -> None:
        if not self.is_percpu:
            raise BpfError(f"map '{self.name}': not a per-CPU map")

    def __repr__(self) -> str:
        return f"BpfMap({self.name!r}, fd={self.fd}, type={self.map_type}, max_entries={self.max_entries})"
