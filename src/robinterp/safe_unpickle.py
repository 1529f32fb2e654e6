"""Reading checkpoint files from the internet without running their code.

A published checkpoint is a pickle (`torch.save`), and unpickling a file can call any Python
function it names. `load_untrusted(path, sha256)` first checks the file: size, magic bytes, an
HTML page or a Git LFS pointer saved in its place (a failed download), a zip that unpacks to
far more than its size (a zip bomb), the optional sha256 pin. A safetensors file holds tensors
and a JSON header only, and is read with the safetensors library.
It then unpickles through `torch.load` with an allow-list unpickler: tensors, storages, plain
containers and the few harmless globals these files really hold (numpy's scalar and array
reconstructors, `_codecs.encode`). Any other global is refused with an error naming it, before
anything is called.

MadryLab's `cifar_l2_0_25.pt` and `cifar_l2_1_0.pt` are dill pickles whose scheduler state holds a
pickled function (its Python 3.7 code object cannot be rebuilt on Python >= 3.8). dill's
reconstructors, and the argument objects such a function's closure holds (argparse / cox
parameters), are replaced by inert `Opaque` stand-ins that record their name and are never called,
so the file's tensors load and the function is dropped.
"""

from __future__ import annotations

import _codecs
import collections
import pickle
import re
from pathlib import Path

import torch

from .errors import RobinterpError
from .storage import sha256_file

ZIP_MAGIC = b"PK\x03\x04"  # torch.save since torch 1.6
LEGACY_MAGIC = (
    b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickled legacy magic 0x1950a86a20f9469cfc6c
)
MIN_BYTES = 1024  # the smallest torch.save of a state dict is larger than this

_SAFE = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,  # nn.Parameter(data, requires_grad)
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _codecs.encode,  # protocol-2 pickles spell bytes as _codecs.encode(str, "latin1")
}
_NUMPY = ("scalar", "_reconstruct")  # under numpy.core.multiarray / numpy._core.multiarray; + numpy.dtype, ndarray

# dill's reconstructors of functions, code objects, cells, modules and types, a function's globals
# (`<module>.__dict__`, never imported) and the parameter objects robustness's scheduler lambdas
# close over: stand-ins, never called.
_STAND_IN_MODULES = ("dill",)
_STAND_IN = {("cox.utils", "Parameters"), ("argparse", "Namespace")}


class Opaque:
    """Inert stand-in for a pickled object we do not rebuild (a function, its code, its closure)."""

    def __init__(self, name: str, *args, **kwargs):
        self.name = name

    def __call__(self, *args, **kwargs):
        return Opaque(self.name + "()")

    def __setstate__(self, state):  # pickle BUILD: the state is dropped
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def __repr__(self):
        return f"<not rebuilt: {self.name}>"


class OpaqueObject:
    """Stand-in type for a class we do not rebuild (argparse.Namespace, cox Parameters): the
    pickle's NEWOBJ needs a type; the instance keeps nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


STAND_INS = (Opaque, OpaqueObject)


def _getattr_of_stand_in(obj, name, *default):
    """dill spells some references `getattr(x, name)`: allowed on a stand-in only, never on a real object."""
    if not isinstance(obj, STAND_INS):
        raise UnsafeGlobal(f"getattr({type(obj).__name__}, {name!r})")
    return Opaque(f"{getattr(obj, 'name', type(obj).__name__)}.{name}")


def _setattr_of_stand_in(obj, name, value):
    """dill fills a closure cell with `setattr(cell, "cell_contents", x)`: a no-op on a stand-in only."""
    if not isinstance(obj, STAND_INS):
        raise UnsafeGlobal(f"setattr({type(obj).__name__}, {name!r}, ...)")


def _resolve(module: str, name: str):
    if module == "builtins" and name in ("getattr", "setattr"):
        return _getattr_of_stand_in if name == "getattr" else _setattr_of_stand_in
    if (module, name) in _SAFE:
        return _SAFE[(module, name)]
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY:
        return _numpy_global(name)
    if (module, name) in (("numpy", "dtype"), ("numpy", "ndarray")):
        import numpy as np

        return getattr(np, name)
    if module.startswith("numpy.dtypes") and name.endswith("DType"):
        import numpy as np

        return getattr(np.dtypes, name)
    if (module, name) in _STAND_IN:
        return OpaqueObject
    if module.split(".")[0] in _STAND_IN_MODULES or name == "__dict__":
        return Opaque(f"{module}.{name}")  # `module.__dict__`: how dill refers to a function's globals
    return None


def _numpy_global(name: str):
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    return getattr(multiarray, name)


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose globals come from the allow-list only (Python docs, 'Restricting Globals')."""

    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module  # protocol-2 pickles use Python 2's name
        obj = _resolve(module, name)
        if obj is None:
            raise UnsafeGlobal(f"{module}.{name}")
        return obj


class UnsafeGlobal(pickle.UnpicklingError):
    pass


class _SafePickleModule:
    """What torch.load needs of a pickle module: `Unpickler` (subclassed by torch) and `load`."""

    Unpickler = SafeUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return SafeUnpickler(file, **kwargs).load()


def printable(text: str) -> str:
    """`text` with control characters (terminal escape codes from a hostile file) shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def is_safetensors(path: str | Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size


def refuse_zip_bomb(path: str | Path, ratio: int = 2) -> None:
    """Refuse a zip whose members declare more than `ratio` times the file's size once unpacked,
    before anything is read: torch.save stores tensors uncompressed, so a real checkpoint unpacks
    to about its own size, and a 4 MB file that unpacks to 4 GiB is an attack on memory."""
    import zipfile

    path = Path(path)
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            declared = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip (a legacy torch file), or a broken one: the loader names it
    if declared > ratio * size + (1 << 20):
        raise RobinterpError(
            f"{path}: a zip of {size / 2**20:.1f} MiB whose members unpack to "
            f"{declared / 2**20:.1f} MiB: a zip bomb, not a torch.save file (which stores tensors "
            "uncompressed); refused before reading"
        )


def check_file(path: str | Path, sha256: str | None = None) -> str:
    """Refuse what is not a complete torch.save file; check the sha256 pin; return the sha256."""
    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"{path}: file not found; download it first (docs/published_models.md lists the URLs)")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text[:1024]:
        title = re.search(rb"<title>(.*?)</title>", head, re.I | re.S)
        what = f" titled {title.group(1).decode('utf-8', 'replace').strip()[:80]!r}" if title else ""
        raise RobinterpError(
            f"{path}: an HTML page{what} ({size} bytes), not a checkpoint: the download failed "
            "(Google Drive answers large files with a confirmation page); download it again "
            "from a browser or with gdown"
        )
    if head.startswith(b"version https://git-lfs"):
        raise RobinterpError(f"{path}: a Git LFS pointer, not a checkpoint; fetch the file itself (git lfs pull)")
    if size < MIN_BYTES:
        raise RobinterpError(f"{path}: {size} bytes, too small to be a model checkpoint; download it again")
    if head.startswith(ZIP_MAGIC):
        with open(path, "rb") as f:
            f.seek(max(0, size - 65536 - 22))
            if b"PK\x05\x06" not in f.read():  # zip end-of-central-directory record
                raise RobinterpError(
                    f"{path}: truncated zip ({size} bytes, no end record); the download is "
                    "incomplete: download it again"
                )
        refuse_zip_bomb(path)
    elif not head.startswith(LEGACY_MAGIC) and not is_safetensors(path):
        raise RobinterpError(
            f"{path}: not a PyTorch checkpoint (starts with {head[:8]!r}; expected a torch.save zip or legacy file)"
        )
    digest = sha256_file(path)
    if sha256 and digest != sha256.lower():
        raise RobinterpError(
            f"{path}: sha256 {digest} does not match the pinned {sha256.lower()}; "
            "the file is another release or corrupt (or fix the pin)"
        )
    return digest


def load_untrusted(path: str | Path, sha256: str | None = None) -> tuple[object, str]:
    """(the unpickled object, the file's sha256); never runs code the file names."""
    digest = check_file(path, sha256)
    if is_safetensors(path):  # tensors and a JSON header, nothing to unpickle
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu"), digest
        except (SafetensorError, OSError, ValueError) as e:
            raise RobinterpError(
                f"{path}: a damaged safetensors file ({printable(str(e))[:200]}); download it again"
            ) from None
    try:
        # weights_only=False only hands unpickling to our allow-list module: torch's own weights_only
        # loader refuses the dill/numpy globals these published files hold
        obj = torch.load(path, map_location="cpu", pickle_module=_SafePickleModule, weights_only=False)
    except UnsafeGlobal as e:
        raise RobinterpError(
            f"{path}: refused: the pickle calls {printable(str(e))}, which is not on the allow-list "
            "of tensors, containers and harmless reconstructors; nothing was run. It is not a "
            "published checkpoint of a supported format"
        ) from None
    except Exception as e:  # truncated legacy file, broken zip member, wrong pickle
        raise RobinterpError(
            f"{path}: cannot unpickle ({type(e).__name__}: {printable(str(e))[:200]}); "
            "the file is corrupt or incomplete: download it again"
        ) from e
    return obj, digest
