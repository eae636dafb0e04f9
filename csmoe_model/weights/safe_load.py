"""Read a ``torch.save`` zip checkpoint without unpickling arbitrary objects.

A PyTorch checkpoint is a zip archive: ``<name>/data.pkl`` (a pickle of the saved object) and one
record ``<name>/data/<key>`` per tensor storage. Unpickling ``data.pkl`` with :mod:`pickle` would
import and call whatever globals it names; Lightning checkpoints name e.g. OmegaConf's
``DictConfig`` in ``hyper_parameters``, so ``torch.load(weights_only=True)`` refuses them and a
plain ``torch.load`` would execute code from the file.

:func:`read_torch_checkpoint` unpickles with :class:`RestrictedUnpickler`, whose ``find_class``
resolves only:

* the tensor rebuild functions (``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``,
  ``_rebuild_parameter``, ``_rebuild_parameter_with_state``), replaced by our own implementations
  that only view the storages read from the archive;
* the typed storage classes (``torch.FloatStorage``, ...) and dtypes (``torch.float32``, ...), as
  inert tags for the storage records;
* ``collections.OrderedDict`` and the plain builtin containers (``dict``, ``list``, ``tuple``,
  ``set``, ``frozenset``), and ``_codecs.encode`` for latin-1 ``bytes`` (protocol 2's encoding).

Every other global becomes a :class:`SkippedGlobal`: a class that is never imported, whose
"instances" (:class:`SkippedObject`) swallow their constructor arguments and state. Nothing from
the file is ever imported or called. Pickles using the copyreg extension opcodes (``EXT1/2/4``,
which resolve globals through a process-wide registry) are refused outright.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmoe_model.errors import CsmoeError

__all__ = [
    "CheckpointContents",
    "RestrictedUnpickler",
    "SkippedObject",
    "read_torch_checkpoint",
]

#: typed-storage class names (``torch.<Name>``) -> element dtype
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}

#: dtypes a newer ``torch.save`` may name as ``torch.<name>`` globals
DTYPE_NAMES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}

_BUILTIN_CONTAINERS: dict[str, type] = {
    "dict": dict,
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
}

_REFUSED_OPCODES = {"EXT1", "EXT2", "EXT4"}
_RECORD_KEY = re.compile(r"^[0-9A-Za-z_]{1,64}$")


class SkippedObject:
    """Stand-in for an object of a global the reader does not resolve (never imported).

    The object's pickled state (what ``BUILD`` would hand to ``__setstate__``) is kept as plain
    data, so that e.g. the values inside an OmegaConf ``DictConfig`` can be read without OmegaConf;
    items appended or assigned to it are discarded.

    Attributes:
        qualname: ``module.name`` of the global the pickle named.
        state: the state passed by ``BUILD`` (after :func:`read_torch_checkpoint` has reduced it to
            plain values), or ``None``.
    """

    __slots__ = ("qualname", "state")

    def __init__(self, qualname: str, state: Any = None) -> None:
        self.qualname = qualname
        self.state = state

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        """Discard an appended item."""
        return None

    def extend(self, items: Any) -> None:
        """Discard appended items."""
        return None

    def __setitem__(self, key: Any, value: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"<skipped {self.qualname}>"


def _skipped_global(qualname: str) -> type:
    """A class standing for the global ``qualname`` (never imported).

    Calling it or ``__new__``-ing it yields a :class:`SkippedObject` and ignores every argument.
    """

    def _new(cls: type, *args: Any, **kwargs: Any) -> SkippedObject:
        return SkippedObject(qualname)

    return type(
        "SkippedGlobal",
        (),
        {"__new__": _new, "__slots__": (), "__doc__": f"Unresolved global {qualname}."},
    )


@dataclass(frozen=True)
class _StorageTag:
    dtype: torch.dtype


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise pickle.UnpicklingError(f"tensor {what} is not a tuple of ints")
    return tuple(int(v) for v in value)


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any
) -> torch.Tensor:
    """View ``storage`` (a 1-D tensor read from the archive) as a tensor of ``size``/``stride``.

    The extra arguments of ``_rebuild_tensor_v2`` (``requires_grad``, backward hooks, metadata)
    are ignored: the result is a plain tensor. ``torch.as_strided`` refuses views that would
    reach outside the storage.
    """
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise pickle.UnpicklingError("tensor storage is not a storage record of the archive")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise pickle.UnpicklingError("tensor storage offset is not a non-negative int")
    shape = _as_int_tuple(size, "size")
    strides = _as_int_tuple(stride, "stride")
    if len(shape) != len(strides) or min((*shape, *strides, 0)) < 0:
        raise pickle.UnpicklingError("tensor size and stride do not fit")
    if any(n == 0 for n in shape):
        return torch.empty(shape, dtype=storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
    if last >= storage.numel():
        raise pickle.UnpicklingError("tensor reaches outside its storage")
    return torch.as_strided(storage, shape, strides, storage_offset)


def _rebuild_parameter(data: Any, *_ignored: Any) -> torch.Tensor:
    """``nn.Parameter`` in a pickle: keep the data as a plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter data is not a tensor")
    return data


def _encode_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Protocol-2 pickles store ``bytes`` as ``_codecs.encode(str, "latin1")``; nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed for latin-1 bytes only")
    return text.encode("latin1")


_TORCH_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {
    ("_codecs", "encode"): _encode_bytes,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only tensors, storages and plain containers (see module doc).

    Args:
        file: the pickle stream.
        load_storage: called with ``(dtype, record_key, numel)`` for each storage the pickle
            references; returns a 1-D tensor.
    """

    def __init__(
        self, file: io.BufferedIOBase, load_storage: Callable[[torch.dtype, str, int], torch.Tensor]
    ) -> None:
        super().__init__(file)
        self._load_storage = load_storage
        self._storages: dict[str, torch.Tensor] = {}
        self.skipped: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a global: tensor rebuilders, storage/dtype tags and containers; else a stand-in."""
        key = (module, name)
        if key in _TORCH_FUNCTIONS:
            return _TORCH_FUNCTIONS[key]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageTag(STORAGE_DTYPES[name])
        if module == "torch" and name in DTYPE_NAMES:
            return DTYPE_NAMES[name]
        if key == ("collections", "OrderedDict"):
            return OrderedDict
        if module in ("builtins", "__builtin__") and name in _BUILTIN_CONTAINERS:
            return _BUILTIN_CONTAINERS[name]
        qualname = f"{module}.{name}"
        self.skipped.append(qualname)
        return _skipped_global(qualname)

    def persistent_load(self, pid: Any) -> Any:
        """Resolve ``('storage', storage_type, key, location, numel)`` to a 1-D tensor."""
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {type(pid).__name__}")
        _, tag, key, _location, numel = pid[:5]
        if isinstance(tag, _StorageTag):
            dtype = tag.dtype
        elif isinstance(tag, torch.dtype):
            dtype = tag
        else:
            raise pickle.UnpicklingError("storage of an unsupported type")
        if not isinstance(key, str) or not _RECORD_KEY.match(key):
            raise pickle.UnpicklingError("storage key is not a plain record name")
        if not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError("storage size is not a non-negative int")
        if key not in self._storages:
            self._storages[key] = self._load_storage(dtype, key, numel)
        return self._storages[key]


@dataclass
class CheckpointContents:
    """What :func:`read_torch_checkpoint` found.

    Attributes:
        obj: the unpickled object (tensors, plain containers, ints/floats/strings, and
            :class:`SkippedObject` stand-ins).
        skipped: qualified names of the globals that were not resolved (sorted, unique).
    """

    obj: Any
    skipped: list[str] = field(default_factory=list)


def _archive_prefix(names: list[str]) -> str:
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise CsmoeError("not a torch zip checkpoint (no single <name>/data.pkl record)")
    return pkl[0][: -len("data.pkl")]


def _check_opcodes(data: bytes) -> None:
    try:
        for op, _arg, _pos in pickletools.genops(data):
            if op.name in _REFUSED_OPCODES:
                raise CsmoeError(f"refused: the pickle uses the {op.name} opcode")
    except (ValueError, pickle.UnpicklingError) as exc:
        raise CsmoeError(f"not a readable pickle ({exc})") from None


def read_torch_checkpoint(path: str | Path) -> CheckpointContents:
    """Read a ``torch.save`` zip checkpoint keeping only tensors and plain containers.

    Args:
        path: the checkpoint (``.ckpt``, ``.pt``, ``.pth``) in PyTorch's zip format (torch >= 1.6).

    Returns:
        The unpickled object with every unresolved global replaced by a :class:`SkippedObject`,
        and the list of those globals.

    Raises:
        CsmoeError: a missing file, not a zip checkpoint (e.g. the legacy tar format), a
            damaged archive, a storage record that is missing or too short, or a pickle
            the reader refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise CsmoeError(f"checkpoint not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CsmoeError(
            f"{path} is not a torch zip checkpoint ({exc}); re-save it with torch >= 1.6"
        ) from None
    with archive:
        names = archive.namelist()
        prefix = _archive_prefix(names)
        known = set(names)
        order = "little"
        if prefix + "byteorder" in known:
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise CsmoeError(f"{path}: unknown byte order {order!r}")

        def load_storage(dtype: torch.dtype, key: str, numel: int) -> torch.Tensor:
            record = f"{prefix}data/{key}"
            if record not in known:
                raise CsmoeError(f"{path}: storage record {key} is missing")
            raw = archive.read(record)
            itemsize = torch.empty((), dtype=dtype).element_size()
            if len(raw) < numel * itemsize:
                raise CsmoeError(f"{path}: storage record {key} is truncated")
            buf = bytearray(raw[: numel * itemsize])
            if numel == 0:
                return torch.empty(0, dtype=dtype)
            out = torch.frombuffer(buf, dtype=dtype)
            if order == "big" and itemsize > 1:
                swapped = out.numpy().byteswap() if dtype != torch.bfloat16 else None
                if swapped is None:
                    raise CsmoeError(f"{path}: big-endian bfloat16 storages are not supported")
                out = torch.from_numpy(np.ascontiguousarray(swapped))
            return out

        try:
            data = archive.read(prefix + "data.pkl")
        except (zipfile.BadZipFile, OSError, KeyError) as exc:
            raise CsmoeError(f"{path}: damaged archive ({exc})") from None
        _check_opcodes(data)
        unpickler = RestrictedUnpickler(io.BytesIO(data), load_storage)
        try:
            obj = unpickler.load()
        except CsmoeError:
            raise
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError) as exc:
            raise CsmoeError(f"{path}: cannot read the checkpoint safely ({exc})") from None
        except (AttributeError, IndexError, KeyError, RuntimeError) as exc:
            raise CsmoeError(
                f"{path}: malformed checkpoint ({type(exc).__name__}: {exc})"
            ) from None
    return CheckpointContents(obj=_plain(obj, {}), skipped=sorted(set(unpickler.skipped)))


def _plain(obj: Any, memo: dict[int, Any]) -> Any:
    """Copy the unpickled structure keeping only tensors, containers and scalars.

    Tensors are detached (a pickle could have attached hooks through ``BUILD``); anything that is
    not a plain value becomes a :class:`SkippedObject`; shared and self-referencing containers
    are copied once.
    """
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        return obj
    if isinstance(obj, SkippedObject):
        if id(obj) in memo:
            return memo[id(obj)]
        copy = SkippedObject(obj.qualname)
        memo[id(obj)] = copy
        copy.state = _plain(obj.state, memo)
        return copy
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, torch.dtype):
        return obj
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, dict):
        out: dict[Any, Any] = OrderedDict() if isinstance(obj, OrderedDict) else {}
        memo[id(obj)] = out
        for k, v in obj.items():
            out[_plain(k, memo)] = _plain(v, memo)
        return out
    if isinstance(obj, list):
        items: list[Any] = []
        memo[id(obj)] = items
        items.extend(_plain(v, memo) for v in obj)
        return items
    if isinstance(obj, tuple):
        return tuple(_plain(v, memo) for v in obj)
    if isinstance(obj, set | frozenset):
        return type(obj)(_plain(v, memo) for v in obj)
    return SkippedObject(f"{type(obj).__module__}.{type(obj).__qualname__}")
