"""Optional ctypes bridge to the C library (libdoublefann) for cross-checks and benchmarks.

Nothing in ruvector-edge needs libfann; tests and ``benchmarks/bench_neural.py`` use this
bridge, when Debian's ``libfann-dev`` (or any libfann 2.x) is installed, to compare our
results with the reference implementation on the same data and weights.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ruvector_edge.errors import NotFoundError, StorageError
from ruvector_edge.neural.data import TrainingData

__all__ = ["CFann", "CTrainData", "available", "load_library", "unavailable_reason"]

F64 = npt.NDArray[np.float64]
_CANDIDATES = ("libdoublefann.so.2", "libdoublefann.so", "libdoublefann.dylib")
_lib: ctypes.CDLL | None = None
_reason = ""


class _Connection(ctypes.Structure):
    _fields_ = [
        ("from_neuron", ctypes.c_uint),
        ("to_neuron", ctypes.c_uint),
        ("weight", ctypes.c_double),
    ]


def load_library() -> ctypes.CDLL:
    """Load libdoublefann or raise :class:`NotFoundError` saying how to install it."""
    global _lib, _reason  # noqa: PLW0603 - module-level cache
    if _lib is not None:
        return _lib
    names = list(_CANDIDATES)
    found = ctypes.util.find_library("doublefann")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        _setup(lib)
        _lib = lib
        return lib
    _reason = "libdoublefann not found (install Debian's libfann-dev: apt-get install libfann-dev)"
    raise NotFoundError(_reason)


def available() -> bool:
    """Whether libdoublefann can be loaded."""
    try:
        load_library()
    except NotFoundError:
        return False
    return True


def unavailable_reason() -> str:
    """Why :func:`available` is false (empty when it is true)."""
    return "" if available() else _reason


def _setup(lib: ctypes.CDLL) -> None:
    vp, u, d, f, i = ctypes.c_void_p, ctypes.c_uint, ctypes.c_double, ctypes.c_float, ctypes.c_int
    pu = ctypes.POINTER(ctypes.c_uint)
    pd = ctypes.POINTER(ctypes.c_double)
    sig: dict[str, tuple[object, list[object]]] = {
        "fann_create_standard_array": (vp, [u, pu]),
        "fann_create_sparse_array": (vp, [f, u, pu]),
        "fann_create_shortcut_array": (vp, [u, pu]),
        "fann_create_from_file": (vp, [ctypes.c_char_p]),
        "fann_save": (i, [vp, ctypes.c_char_p]),
        "fann_destroy": (None, [vp]),
        "fann_run": (pd, [vp, pd]),
        "fann_get_total_connections": (u, [vp]),
        "fann_get_total_neurons": (u, [vp]),
        "fann_get_num_input": (u, [vp]),
        "fann_get_num_output": (u, [vp]),
        "fann_get_connection_array": (None, [vp, ctypes.POINTER(_Connection)]),
        "fann_set_weight_array": (None, [vp, ctypes.POINTER(_Connection), u]),
        "fann_set_training_algorithm": (None, [vp, u]),
        "fann_set_activation_function_hidden": (None, [vp, u]),
        "fann_set_activation_function_output": (None, [vp, u]),
        "fann_set_activation_steepness_hidden": (None, [vp, d]),
        "fann_set_activation_steepness_output": (None, [vp, d]),
        "fann_set_learning_rate": (None, [vp, f]),
        "fann_set_train_error_function": (None, [vp, u]),
        "fann_set_train_stop_function": (None, [vp, u]),
        "fann_set_bit_fail_limit": (None, [vp, d]),
        "fann_train_epoch": (f, [vp, vp]),
        "fann_train_on_data": (None, [vp, vp, u, u, f]),
        "fann_cascadetrain_on_data": (None, [vp, vp, u, u, f]),
        "fann_test_data": (f, [vp, vp]),
        "fann_get_MSE": (f, [vp]),
        "fann_get_bit_fail": (u, [vp]),
        "fann_read_train_from_file": (vp, [ctypes.c_char_p]),
        "fann_destroy_train": (None, [vp]),
        "fann_train": (None, [vp, pd, pd]),
        "fann_init_weights": (None, [vp, vp]),
        "fann_randomize_weights": (None, [vp, d, d]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


class CTrainData:
    """A ``struct fann_train_data`` loaded in libfann (via a temporary ``.data`` file)."""

    def __init__(self, data: TrainingData) -> None:
        self._lib = load_library()
        self.length = data.length
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.data"
            data.save_train(path)
            self.ptr: int | None = self._lib.fann_read_train_from_file(os.fsencode(path))
        if not self.ptr:
            raise StorageError("libfann could not read the training data")

    def __del__(self) -> None:
        if getattr(self, "ptr", None):
            self._lib.fann_destroy_train(self.ptr)
            self.ptr = None


class CFann:
    """A handle to a libfann network with the handful of calls the cross-checks use."""

    def __init__(self, ptr: int | None) -> None:
        self._lib = load_library()
        if not ptr:
            raise StorageError("libfann could not create the network")
        self.ptr: int | None = ptr

    def __del__(self) -> None:
        if getattr(self, "ptr", None):
            self._lib.fann_destroy(self.ptr)
            self.ptr = None

    @staticmethod
    def _layers(layers: Sequence[int]) -> ctypes.Array[ctypes.c_uint]:
        return (ctypes.c_uint * len(layers))(*layers)

    @classmethod
    def create_standard(cls, layers: Sequence[int]) -> CFann:
        """``fann_create_standard_array``."""
        lib = load_library()
        return cls(lib.fann_create_standard_array(len(layers), cls._layers(layers)))

    @classmethod
    def create_sparse(cls, rate: float, layers: Sequence[int]) -> CFann:
        """``fann_create_sparse_array``."""
        lib = load_library()
        return cls(lib.fann_create_sparse_array(rate, len(layers), cls._layers(layers)))

    @classmethod
    def create_shortcut(cls, layers: Sequence[int]) -> CFann:
        """``fann_create_shortcut_array``."""
        lib = load_library()
        return cls(lib.fann_create_shortcut_array(len(layers), cls._layers(layers)))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CFann:
        """``fann_create_from_file``."""
        lib = load_library()
        return cls(lib.fann_create_from_file(os.fsencode(path)))

    def save(self, path: str | os.PathLike[str]) -> None:
        """``fann_save``."""
        if self._lib.fann_save(self.ptr, os.fsencode(path)) != 0:
            raise StorageError(f"libfann could not save {os.fspath(path)!r}")

    @property
    def total_connections(self) -> int:
        """``fann_get_total_connections``."""
        return int(self._lib.fann_get_total_connections(self.ptr))

    @property
    def total_neurons(self) -> int:
        """``fann_get_total_neurons``."""
        return int(self._lib.fann_get_total_neurons(self.ptr))

    @property
    def num_output(self) -> int:
        """``fann_get_num_output``."""
        return int(self._lib.fann_get_num_output(self.ptr))

    def connections(self) -> list[tuple[int, int, float]]:
        """``(from, to, weight)`` in libfann's order."""
        n = self.total_connections
        arr = (_Connection * n)()
        self._lib.fann_get_connection_array(self.ptr, arr)
        return [(c.from_neuron, c.to_neuron, c.weight) for c in arr]

    def get_weights(self) -> F64:
        """Weights in connection order."""
        return np.array([w for _, _, w in self.connections()])

    def set_weights(self, weights: Sequence[float] | F64) -> None:
        """Set every weight (through ``fann_set_weight_array``)."""
        conns = self.connections()
        arr = (_Connection * len(conns))()
        for k, ((src, dst, _), w) in enumerate(zip(conns, weights, strict=True)):
            arr[k].from_neuron, arr[k].to_neuron, arr[k].weight = src, dst, float(w)
        self._lib.fann_set_weight_array(self.ptr, arr, len(conns))

    def run(self, x: Sequence[float] | F64) -> F64:
        """``fann_run`` on one input vector."""
        inp = np.ascontiguousarray(x, dtype=np.float64)
        out = self._lib.fann_run(self.ptr, inp.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
        return np.array(out[: self.num_output])

    def run_batch(self, xs: F64) -> F64:
        """``fann_run`` on each row."""
        return np.array([self.run(x) for x in xs])

    def set(self, name: str, *args: float) -> None:
        """Call ``fann_set_<name>(ann, *args)``."""
        getattr(self._lib, f"fann_set_{name}")(self.ptr, *args)

    def train_epoch(self, data: CTrainData) -> float:
        """``fann_train_epoch``."""
        return float(self._lib.fann_train_epoch(self.ptr, data.ptr))

    def train_on_data(
        self, data: CTrainData, max_epochs: int, reports: int, desired_error: float
    ) -> None:
        """``fann_train_on_data`` (reports go to libfann's stdout when non-zero)."""
        self._lib.fann_train_on_data(self.ptr, data.ptr, max_epochs, reports, desired_error)

    def cascadetrain_on_data(
        self, data: CTrainData, max_neurons: int, reports: int, desired_error: float
    ) -> None:
        """``fann_cascadetrain_on_data``."""
        self._lib.fann_cascadetrain_on_data(self.ptr, data.ptr, max_neurons, reports, desired_error)

    def test_data(self, data: CTrainData) -> float:
        """``fann_test_data``."""
        return float(self._lib.fann_test_data(self.ptr, data.ptr))

    def get_bit_fail(self) -> int:
        """``fann_get_bit_fail``."""
        return int(self._lib.fann_get_bit_fail(self.ptr))
