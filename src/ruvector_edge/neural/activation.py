"""FANN's activation functions, their derivatives and the enums of the C API.

Values follow libfann exactly (``fann_activation.h``): the network multiplies the weighted
sum by the neuron's steepness, clips it to ``±150 / steepness`` and then applies the
function to that product; derivatives take the output value and that (scaled) sum, with
libfann's clipping of sigmoid-like values. Numbering matches ``enum fann_activationfunc_enum``
so ``.net`` files carry the same integers.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

from ruvector_edge.errors import InvalidInputError

__all__ = [
    "SYMMETRIC_FUNCTIONS",
    "ActivationFunc",
    "ErrorFunc",
    "NetType",
    "StopFunc",
    "TrainingAlgorithm",
    "activate",
    "derive",
]

F64 = npt.NDArray[np.float64]


class ActivationFunc(IntEnum):
    """The 20 activation functions of libfann (same numbers as ``FANN_*``)."""

    LINEAR = 0
    THRESHOLD = 1
    THRESHOLD_SYMMETRIC = 2
    SIGMOID = 3
    SIGMOID_STEPWISE = 4
    SIGMOID_SYMMETRIC = 5
    SIGMOID_SYMMETRIC_STEPWISE = 6
    GAUSSIAN = 7
    GAUSSIAN_SYMMETRIC = 8
    GAUSSIAN_STEPWISE = 9
    ELLIOT = 10
    ELLIOT_SYMMETRIC = 11
    LINEAR_PIECE = 12
    LINEAR_PIECE_SYMMETRIC = 13
    SIN_SYMMETRIC = 14
    COS_SYMMETRIC = 15
    SIN = 16
    COS = 17
    LINEAR_PIECE_RECT = 18
    LINEAR_PIECE_RECT_LEAKY = 19

    @classmethod
    def parse(cls, value: ActivationFunc | int | str) -> ActivationFunc:
        """Accept a member, its number, or its name (``"sigmoid_symmetric"``, ``"relu"``)."""
        if isinstance(value, ActivationFunc):
            return value
        if isinstance(value, str):
            key = value.strip().upper().removeprefix("FANN_")
            key = {"RELU": "LINEAR_PIECE_RECT", "LEAKY_RELU": "LINEAR_PIECE_RECT_LEAKY"}.get(
                key, key
            )
            try:
                return cls[key]
            except KeyError:
                names = ", ".join(m.name.lower() for m in cls)
                raise InvalidInputError(
                    f"unknown activation function {value!r}; expected one of: {names}"
                ) from None
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                raise InvalidInputError(
                    f"activation function number must be in 0..19, got {value}"
                ) from None
        raise InvalidInputError(f"activation function must be a name or number, got {value!r}")


class TrainingAlgorithm(IntEnum):
    """``enum fann_train_enum``."""

    INCREMENTAL = 0
    BATCH = 1
    RPROP = 2
    QUICKPROP = 3
    SARPROP = 4

    @classmethod
    def parse(cls, value: TrainingAlgorithm | int | str) -> TrainingAlgorithm:
        """Accept a member, its number or its (case-insensitive) name."""
        if isinstance(value, TrainingAlgorithm):
            return value
        try:
            if isinstance(value, str):
                return cls[value.strip().upper().removeprefix("FANN_TRAIN_")]
            return cls(value)
        except (KeyError, ValueError):
            names = ", ".join(m.name.lower() for m in cls)
            raise InvalidInputError(
                f"unknown training algorithm {value!r}; expected one of: {names}"
            ) from None


class ErrorFunc(IntEnum):
    """``enum fann_errorfunc_enum``."""

    LINEAR = 0
    TANH = 1


class StopFunc(IntEnum):
    """``enum fann_stopfunc_enum``."""

    MSE = 0
    BIT = 1


class NetType(IntEnum):
    """``enum fann_nettype_enum``."""

    LAYER = 0
    SHORTCUT = 1


A = ActivationFunc

#: Functions whose output range is [-1, 1]; libfann halves their error (``fann_update_MSE``).
SYMMETRIC_FUNCTIONS: frozenset[ActivationFunc] = frozenset(
    {
        A.LINEAR_PIECE_SYMMETRIC,
        A.THRESHOLD_SYMMETRIC,
        A.SIGMOID_SYMMETRIC,
        A.SIGMOID_SYMMETRIC_STEPWISE,
        A.ELLIOT_SYMMETRIC,
        A.GAUSSIAN_SYMMETRIC,
        A.SIN_SYMMETRIC,
        A.COS_SYMMETRIC,
    }
)

# Breakpoints of libfann's stepwise approximations (in terms of the steepness-scaled sum).
_SIG_STEP_X = np.array(
    [
        -2.64665246009826660156e00,
        -1.47221946716308593750e00,
        -5.49306154251098632812e-01,
        5.49306154251098632812e-01,
        1.47221934795379638672e00,
        2.64665293693542480469e00,
    ]
)
_SIG_STEP_Y = np.array(
    [
        4.99999988824129104614e-03,
        5.00000007450580596924e-02,
        2.50000000000000000000e-01,
        7.50000000000000000000e-01,
        9.49999988079071044922e-01,
        9.95000004768371582031e-01,
    ]
)
_SYM_STEP_X = np.array(
    [
        -2.64665293693542480469e00,
        -1.47221934795379638672e00,
        -5.49306154251098632812e-01,
        5.49306154251098632812e-01,
        1.47221934795379638672e00,
        2.64665293693542480469e00,
    ]
)
_SYM_STEP_Y = np.array(
    [
        -9.90000009536743164062e-01,
        -8.99999976158142089844e-01,
        -5.00000000000000000000e-01,
        5.00000000000000000000e-01,
        8.99999976158142089844e-01,
        9.90000009536743164062e-01,
    ]
)


def _stepwise(x: F64, xs: F64, ys: F64, lo: float, hi: float) -> F64:
    out = np.interp(x, xs, ys, left=lo, right=hi)
    return np.where(x >= xs[-1], hi, out)


def activate(func: ActivationFunc, x: F64) -> F64:
    """Apply ``func`` to already steepness-scaled sums ``x`` (``fann_activation_switch``)."""
    if func == A.LINEAR:
        return x.copy()
    if func == A.SIGMOID:
        return 0.5 * (1.0 + np.tanh(x))  # == 1/(1+exp(-2x)), without overflow
    if func == A.SIGMOID_SYMMETRIC:
        return np.tanh(x)  # == 2/(1+exp(-2x)) - 1, without overflow
    if func == A.LINEAR_PIECE_RECT:
        return np.maximum(x, 0.0)
    if func == A.LINEAR_PIECE_RECT_LEAKY:
        return np.where(x < 0.0, 0.01 * x, x)
    if func == A.SIGMOID_STEPWISE:
        return _stepwise(x, _SIG_STEP_X, _SIG_STEP_Y, 0.0, 1.0)
    if func == A.SIGMOID_SYMMETRIC_STEPWISE:
        return _stepwise(x, _SYM_STEP_X, _SYM_STEP_Y, -1.0, 1.0)
    if func == A.THRESHOLD:
        return np.where(x < 0.0, 0.0, 1.0)
    if func == A.THRESHOLD_SYMMETRIC:
        return np.where(x < 0.0, -1.0, 1.0)
    if func == A.GAUSSIAN:
        return np.exp(-x * x)
    if func == A.GAUSSIAN_SYMMETRIC:
        return np.exp(-x * x) * 2.0 - 1.0
    if func == A.ELLIOT:
        return (x / 2.0) / (1.0 + np.abs(x)) + 0.5
    if func == A.ELLIOT_SYMMETRIC:
        return x / (1.0 + np.abs(x))
    if func == A.LINEAR_PIECE:
        return np.clip(x, 0.0, 1.0)
    if func == A.LINEAR_PIECE_SYMMETRIC:
        return np.clip(x, -1.0, 1.0)
    if func == A.SIN_SYMMETRIC:
        return np.sin(x)
    if func == A.COS_SYMMETRIC:
        return np.cos(x)
    if func == A.SIN:
        return np.sin(x) / 2.0 + 0.5
    if func == A.COS:
        return np.cos(x) / 2.0 + 0.5
    # GAUSSIAN_STEPWISE: libfann's float build returns 0 for it.
    return np.zeros_like(x)


def derive(func: ActivationFunc, steepness: F64 | float, value: F64, total: F64) -> F64:
    """libfann's ``fann_activation_derived``: derivative from output ``value`` and ``total``.

    ``total`` is the neuron's stored sum (already multiplied by steepness, as libfann keeps
    it), so e.g. the sine derivative is ``s * cos(s * total)`` exactly as in the C library.
    """
    s = steepness
    if func in (A.LINEAR, A.LINEAR_PIECE, A.LINEAR_PIECE_SYMMETRIC):
        return np.broadcast_to(np.asarray(s, dtype=np.float64), value.shape).copy()
    if func == A.LINEAR_PIECE_RECT:
        return np.where(value < 0.0, 0.0, s)
    if func == A.LINEAR_PIECE_RECT_LEAKY:
        return np.where(value < 0.0, np.multiply(s, 0.01), s)
    if func in (A.SIGMOID, A.SIGMOID_STEPWISE):
        v = np.clip(value, 0.01, 0.99)
        return 2.0 * s * v * (1.0 - v)
    if func in (A.SIGMOID_SYMMETRIC, A.SIGMOID_SYMMETRIC_STEPWISE):
        v = np.clip(value, -0.98, 0.98)
        return s * (1.0 - v * v)
    if func == A.GAUSSIAN:
        return -2.0 * total * value * s * s
    if func == A.GAUSSIAN_SYMMETRIC:
        return -2.0 * total * (value + 1.0) * s * s
    if func == A.ELLIOT:
        d = 1.0 + np.abs(total)
        return s * 1.0 / (2.0 * d * d)
    if func == A.ELLIOT_SYMMETRIC:
        d = 1.0 + np.abs(total)
        return s * 1.0 / (d * d)
    if func == A.SIN_SYMMETRIC:
        return s * np.cos(s * total)
    if func == A.COS_SYMMETRIC:
        return s * -np.sin(s * total)
    if func == A.SIN:
        return s * np.cos(s * total) / 2.0
    if func == A.COS:
        return s * -np.sin(s * total) / 2.0
    # THRESHOLD*, GAUSSIAN_STEPWISE cannot be trained: libfann yields 0.
    return np.zeros_like(value)
