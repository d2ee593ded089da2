"""Read a GGUF header (v2/v3, either byte order) fast, without materialising its large arrays.

The layout (ggml docs/gguf.md), little-endian unless the file is big-endian:

    uint32 magic             "GGUF"
    uint32 version           2 or 3 (v1 had 32-bit counts and is refused)
    uint64 tensor_count
    uint64 metadata_kv_count
    metadata_kv[kv_count]    gguf_string key; uint32 value_type; value
    tensor_info[tensor_count]
                             gguf_string name; uint32 n_dims; uint64 ne[n_dims];
                             uint32 ggml_type; uint64 offset (relative to the data section)
    padding to general.alignment (default 32), then the tensor data

    gguf_string = uint64 len; len bytes of UTF-8
    value_type  = 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string,
                  9 array (uint32 item_type; uint64 n; n items), 10 u64, 11 i64, 12 f64

Arrays longer than `Limits.keep_array` (the tokenizer's tokens, scores, token types and
merges) are walked but only their item type and length are kept. Every count and length is
checked against hard limits and against the bytes left in the source before anything is
allocated, so a corrupt or hostile header fails with GGUFError instead of eating memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from r1run.errors import GGUFError
from r1run.gguf import ggml_types
from r1run.gguf.source import ByteSource, FileSource

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
STRING, ARRAY = 8, 9
# value_type -> struct code for the fixed-size types
_SCALAR_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_SCALAR_SIZES = {t: struct.calcsize(c) for t, c in _SCALAR_CODES.items()}
VALUE_TYPE_NAMES = {0: "UINT8", 1: "INT8", 2: "UINT16", 3: "INT16", 4: "UINT32", 5: "INT32", 6: "FLOAT32",
                    7: "BOOL", 8: "STRING", 9: "ARRAY", 10: "UINT64", 11: "INT64", 12: "FLOAT64"}


@dataclass(frozen=True)
class Limits:
    """Hard ceilings checked before allocating; generous for any real model (R1: ~1,100 tensors, ~50 keys)."""

    max_tensors: int = 1 << 20
    max_kvs: int = 1 << 16
    max_array: int = 1 << 28        # items in one array (R1's vocabulary: 129,280)
    max_string: int = 1 << 26       # bytes in one string value (a chat template is ~10 KB)
    max_key: int = 1 << 16          # bytes in a key
    max_depth: int = 4              # arrays of arrays of ...
    max_name: int = 63              # llama.cpp: GGML_MAX_NAME (64) including the NUL
    max_dims: int = 4               # GGML_MAX_DIMS
    max_elements: int = 1 << 62     # elements in one tensor (int64 in ggml)
    keep_array: int = 1024          # arrays up to this length keep their values
    chunk: int = 1 << 20            # bytes fetched per read from the source


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ArrayValue:
    """An array KV: its item type and length; `values` only when length <= Limits.keep_array."""

    item_type: int
    length: int
    values: tuple | None = None


Value = Union[int, float, bool, str, ArrayValue]


@dataclass(frozen=True)
class KeyValue:
    key: str
    type: int
    value: Value

    @property
    def type_name(self) -> str:
        return VALUE_TYPE_NAMES[self.type]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry; `shape` is in GGUF order (ne0 first, the row length)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        return ggml_types.type_name(self.ggml_type)


@dataclass(frozen=True)
class Header:
    """A parsed GGUF header: metadata, tensor infos, and where the data lives."""

    name: str
    version: int
    byte_order: str                 # "little" or "big"
    kv: dict[str, KeyValue]
    tensors: tuple[TensorInfo, ...]
    alignment: int
    data_offset: int                # absolute offset of the tensor data section
    file_size: int

    def get(self, key: str, default: Value | None = None) -> Value | None:
        kv = self.kv.get(key)
        return default if kv is None else kv.value

    @property
    def architecture(self) -> str | None:
        arch = self.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def data_size(self) -> int:
        """Bytes the data section must hold: the end of the furthest tensor."""
        return max((t.offset + t.n_bytes for t in self.tensors), default=0)

    @property
    def missing_bytes(self) -> int:
        """How many bytes the file lacks for its tensors (0 for a complete file)."""
        return max(0, self.data_offset + self.data_size - self.file_size)


def read_header(source: ByteSource | Path | str, limits: Limits = DEFAULT_LIMITS) -> Header:
    """Parse the header of a GGUF file or any ByteSource (e.g. a remote file read with HTTP Range)."""
    if isinstance(source, (str, Path)):
        with FileSource(source) as src:
            return _Parser(src, limits).parse()
    return _Parser(source, limits).parse()


class _Cursor:
    """Sequential reads over a ByteSource through a chunk buffer; every read is bounds-checked first."""

    def __init__(self, source: ByteSource, chunk: int) -> None:
        self.source = source
        self.size = int(source.size)
        self.chunk = chunk
        self.buf = b""
        self.base = 0       # absolute offset of buf[0]
        self.pos = 0        # position inside buf

    @property
    def offset(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return self.size - self.offset

    def truncated(self, what: str) -> GGUFError:
        return GGUFError(f"{self.source.name}: truncated GGUF header (ends at byte {self.size} while reading {what})",
                         "the file is incomplete or corrupt: download it again")

    def ensure(self, n: int, what: str) -> None:
        """Make n bytes available at pos, fetching from the source if needed."""
        if self.pos + n <= len(self.buf):
            return
        off = self.offset
        if n > self.size - off:
            raise self.truncated(what)
        want = min(max(n, self.chunk), self.size - off)
        data = self.source.read(off, want)
        if len(data) < n:
            raise self.truncated(what)
        self.buf, self.base, self.pos = data, off, 0

    def take(self, n: int, what: str) -> bytes:
        self.ensure(n, what)
        start = self.pos
        self.pos += n
        return self.buf[start:self.pos]

    def unpack(self, st: struct.Struct, what: str) -> tuple:
        self.ensure(st.size, what)
        vals = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return vals

    def skip(self, n: int, what: str) -> None:
        if n > self.left:
            raise self.truncated(what)
        if self.pos + n <= len(self.buf):
            self.pos += n
        else:
            self.base, self.buf, self.pos = self.offset + n, b"", 0


class _Parser:
    def __init__(self, source: ByteSource, limits: Limits) -> None:
        self.src = source
        self.lim = limits
        self.cur = _Cursor(source, limits.chunk)

    def fail(self, message: str) -> GGUFError:
        return GGUFError(f"{self.src.name}: {message}", "the file is corrupt or not a model r1run can read")

    def parse(self) -> Header:
        cur, lim = self.cur, self.lim
        if cur.size < 4 or cur.take(4, "the magic") != GGUF_MAGIC:
            raise GGUFError(f"{self.src.name} is not a GGUF file (it does not start with 'GGUF')",
                            "pass a .gguf model file; other formats (safetensors, .bin) need converting with llama.cpp")
        (version,) = cur.unpack(struct.Struct("<I"), "the version")
        order = "<"
        if version & 0xFFFF == 0 and version >> 24 in (2, 3):
            order, version = ">", version >> 24
        if version == 1:
            raise GGUFError(f"{self.src.name} is GGUF version 1, which llama.cpp no longer reads",
                            "convert the model again with a current llama.cpp")
        if version not in (2, 3):
            raise self.fail(f"unsupported GGUF version {version}")
        self._structs(order)
        n_tensors, n_kv = cur.unpack(self.s_QQ, "the counts")
        if n_tensors > lim.max_tensors or n_tensors * 24 > cur.left:  # 24: smallest tensor info (0 dims)
            raise self.fail(f"header claims {n_tensors} tensors, more than the file can hold")
        if n_kv > lim.max_kvs or n_kv * 13 > cur.left:  # 13: smallest key-value (empty key, one byte)
            raise self.fail(f"header claims {n_kv} metadata entries, more than the file can hold")
        kv: dict[str, KeyValue] = {}
        for _ in range(n_kv):
            key = self._string(lim.max_key, "a metadata key")
            if key in kv:
                raise self.fail(f"duplicate metadata key {key!r}")
            (vtype,) = cur.unpack(self.s_I, f"the type of {key!r}")
            kv[key] = KeyValue(key, vtype, self._value(vtype, key, 0))
        alignment = self._alignment(kv)
        tensors = tuple(self._tensor_info(alignment) for _ in range(n_tensors))
        names = {t.name for t in tensors}
        if len(names) != len(tensors):
            raise self.fail("duplicate tensor names")
        data_offset = -(-cur.offset // alignment) * alignment
        return Header(name=self.src.name, version=version, byte_order="big" if order == ">" else "little", kv=kv,
                      tensors=tensors, alignment=alignment, data_offset=data_offset, file_size=cur.size)

    def _structs(self, order: str) -> None:
        self.order = order
        self.s_I = struct.Struct(order + "I")
        self.s_Q = struct.Struct(order + "Q")
        self.s_IQ = struct.Struct(order + "IQ")
        self.s_QQ = struct.Struct(order + "QQ")
        self.scalars = {t: struct.Struct(order + c) for t, c in _SCALAR_CODES.items()}

    def _alignment(self, kv: dict[str, KeyValue]) -> int:
        entry = kv.get("general.alignment")
        if entry is None:
            return DEFAULT_ALIGNMENT
        a = entry.value
        if entry.type != 4 or not isinstance(a, int) or a <= 0 or a & (a - 1) or a > 1 << 20:
            raise self.fail(f"general.alignment must be a power of two (uint32), got {a!r}")
        return a

    def _string(self, max_len: int, what: str) -> str:
        (n,) = self.cur.unpack(self.s_Q, what)
        if n > max_len:
            raise self.fail(f"{what} claims {n} bytes (limit {max_len})")
        return self.cur.take(n, what).decode("utf-8", errors="replace")

    def _value(self, vtype: int, key: str, depth: int) -> Value:
        if vtype in self.scalars:
            return self.cur.unpack(self.scalars[vtype], f"the value of {key!r}")[0]
        if vtype == STRING:
            return self._string(self.lim.max_string, f"the value of {key!r}")
        if vtype == ARRAY:
            return self._array(key, depth)
        raise self.fail(f"metadata {key!r} has unknown value type {vtype}")

    def _array(self, key: str, depth: int) -> ArrayValue:
        cur, lim = self.cur, self.lim
        if depth >= lim.max_depth:
            raise self.fail(f"metadata {key!r} nests arrays deeper than {lim.max_depth}")
        item_type, n = cur.unpack(self.s_IQ, f"the array header of {key!r}")
        if item_type in _SCALAR_SIZES:
            item_min = _SCALAR_SIZES[item_type]
        elif item_type == STRING:
            item_min = 8
        elif item_type == ARRAY:
            item_min = 12
        else:
            raise self.fail(f"array {key!r} has unknown item type {item_type}")
        if n > lim.max_array or n * item_min > cur.left:
            raise self.fail(f"array {key!r} claims {n} items, more than the file can hold")
        keep = n <= lim.keep_array
        if item_type in _SCALAR_SIZES:
            if not keep:
                cur.skip(n * item_min, f"the array {key!r}")
                return ArrayValue(item_type, n)
            st = struct.Struct(f"{self.order}{n}{_SCALAR_CODES[item_type]}")
            return ArrayValue(item_type, n, cur.unpack(st, f"the array {key!r}"))
        if item_type == STRING:
            if not keep:
                self._skip_strings(n, key)
                return ArrayValue(item_type, n)
            return ArrayValue(item_type, n, tuple(self._string(lim.max_string,
                                                               f"an item of {key!r}") for _ in range(n)))
        items = [self._array(key, depth + 1) for _ in range(n)]
        return ArrayValue(item_type, n, tuple(items) if keep else None)

    def _skip_strings(self, count: int, key: str) -> None:
        """Walk `count` gguf_strings, keeping nothing: the hot loop for a 129k-token vocabulary."""
        cur, max_len = self.cur, self.lim.max_string
        unpack = self.s_Q.unpack_from
        what = f"the array {key!r}"
        while count:
            buf, pos, end = cur.buf, cur.pos, len(cur.buf)
            while count and pos + 8 <= end:
                (n,) = unpack(buf, pos)
                nxt = pos + 8 + n
                if nxt > end:
                    break
                pos = nxt
                count -= 1
            cur.pos = pos
            if count:  # the next string straddles the buffer's end (or is huge): take it on its own
                (n,) = cur.unpack(self.s_Q, what)
                if n > max_len:
                    raise self.fail(f"a string in {key!r} claims {n} bytes (limit {max_len})")
                cur.skip(n, what)
                count -= 1
                cur.ensure(min(8, cur.left), what)

    def _tensor_info(self, alignment: int) -> TensorInfo:
        cur, lim = self.cur, self.lim
        name = self._string(lim.max_name, "a tensor name")
        (n_dims,) = cur.unpack(self.s_I, f"the dimensions of {name!r}")
        if n_dims > lim.max_dims:
            raise self.fail(f"tensor {name!r} has {n_dims} dimensions (ggml allows {lim.max_dims})")
        shape = cur.unpack(struct.Struct(f"{self.order}{n_dims}q"), f"the shape of {name!r}")
        n = 1
        for d in shape:
            if d < 0:
                raise self.fail(f"tensor {name!r} has a negative dimension {d}")
            n *= d
        if n > lim.max_elements:
            raise self.fail(f"tensor {name!r} claims {n} elements")
        ggml_type, offset = cur.unpack(self.s_IQ, f"the type of {name!r}")
        if offset % alignment:
            raise self.fail(f"tensor {name!r} is at offset {offset}, not a multiple of the alignment {alignment}")
        try:
            n_bytes = ggml_types.tensor_nbytes(ggml_type, shape)
        except GGUFError as e:
            raise GGUFError(f"{self.src.name}: tensor {name!r}: {e.message}", e.hint) from None
        return TensorInfo(name=name, shape=tuple(shape), ggml_type=ggml_type, offset=offset, n_bytes=n_bytes)
