"""libfann's ``FANN_FLO_2.1`` network text format (written byte-for-byte like libdoublefann).

Layout: the version line, ``key=value`` parameter lines in libfann's fixed order, the
cascade lists, ``layer_sizes`` (bias neurons included), an optional scaling block, the
neurons as ``(num_inputs, activation_function, activation_steepness)`` and the connections
as ``(connected_to_neuron, weight)`` with global neuron indices. ``FANN_FLO_2.0`` files
(no scaling block) load too. A variant without weights (``(connected_to_neuron)`` only)
is used inside network blobs.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

from ruvector_edge.errors import InvalidInputError
from ruvector_edge.neural._structure import F64, Structure
from ruvector_edge.neural.activation import (
    ActivationFunc,
    ErrorFunc,
    NetType,
    StopFunc,
    TrainingAlgorithm,
)

if TYPE_CHECKING:
    from ruvector_edge.neural.network import Network

__all__ = ["format_net", "parse_net"]

VERSION = "FANN_FLO_2.1"
_NEURON_RE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*,\s*([^)\s]+)\s*\)")
_CONN_RE = re.compile(r"\(\s*(-?\d+)\s*,\s*([^)\s]+)\s*\)")
_SRC_RE = re.compile(r"\(\s*(-?\d+)\s*\)")
_NEURONS_KEY = "neurons (num_inputs, activation_function, activation_steepness)"
_CONNS_KEY = "connections (connected_to_neuron, weight)"
_SRCS_KEY = "connections (connected_to_neuron)"

# (key, attribute, kind) in libfann's order; kind f = "%f", u = "%u", e = "%.20e"
_PARAMS: list[tuple[str, str, str]] = [
    ("learning_rate", "learning_rate", "f"),
    ("connection_rate", "connection_rate", "f"),
    ("network_type", "network_type", "u"),
    ("learning_momentum", "learning_momentum", "f"),
    ("training_algorithm", "training_algorithm", "u"),
    ("train_error_function", "train_error_function", "u"),
    ("train_stop_function", "train_stop_function", "u"),
    ("cascade_output_change_fraction", "cascade_output_change_fraction", "f"),
    ("quickprop_decay", "quickprop_decay", "f"),
    ("quickprop_mu", "quickprop_mu", "f"),
    ("rprop_increase_factor", "rprop_increase_factor", "f"),
    ("rprop_decrease_factor", "rprop_decrease_factor", "f"),
    ("rprop_delta_min", "rprop_delta_min", "f"),
    ("rprop_delta_max", "rprop_delta_max", "f"),
    ("rprop_delta_zero", "rprop_delta_zero", "f"),
    ("cascade_output_stagnation_epochs", "cascade_output_stagnation_epochs", "u"),
    ("cascade_candidate_change_fraction", "cascade_candidate_change_fraction", "f"),
    ("cascade_candidate_stagnation_epochs", "cascade_candidate_stagnation_epochs", "u"),
    ("cascade_max_out_epochs", "cascade_max_out_epochs", "u"),
    ("cascade_min_out_epochs", "cascade_min_out_epochs", "u"),
    ("cascade_max_cand_epochs", "cascade_max_cand_epochs", "u"),
    ("cascade_min_cand_epochs", "cascade_min_cand_epochs", "u"),
    ("cascade_num_candidate_groups", "cascade_num_candidate_groups", "u"),
    ("bit_fail_limit", "bit_fail_limit", "e"),
    ("cascade_candidate_limit", "cascade_candidate_limit", "e"),
    ("cascade_weight_multiplier", "cascade_weight_multiplier", "e"),
]
_SCALE_NAMES = ("scale_mean", "scale_deviation", "scale_new_min", "scale_factor")


def _fmt(kind: str, value: object) -> str:
    if kind == "u":
        return str(int(value))  # type: ignore[call-overload]
    if kind == "f":
        return f"{float(value):f}"  # type: ignore[arg-type]
    return f"{float(value):.20e}"  # type: ignore[arg-type]


def format_net(net: Network, *, with_weights: bool = True) -> str:
    """The ``.net`` text of ``net``."""
    s = net._s
    out = [VERSION, f"num_layers={net.num_layers}"]
    for key, attr, kind in _PARAMS:
        out.append(f"{key}={_fmt(kind, getattr(net, attr))}")
    funcs = net.cascade_activation_functions
    steeps = net.cascade_activation_steepnesses
    out.append(f"cascade_activation_functions_count={len(funcs)}")
    out.append("cascade_activation_functions=" + "".join(f"{int(f)} " for f in funcs))
    out.append(f"cascade_activation_steepnesses_count={len(steeps)}")
    out.append("cascade_activation_steepnesses=" + "".join(f"{v:.20e} " for v in steeps))
    out.append("layer_sizes=" + "".join(f"{n} " for n in s.layer_sizes))
    if net.scale_in is not None and net.scale_out is not None:
        out.append("scale_included=1")
        for where, params in (("in", net.scale_in), ("out", net.scale_out)):
            for name, arr in zip(_SCALE_NAMES, params, strict=True):
                out.append(f"{name}_{where}=" + "".join(f"{v:f} " for v in arr))
    else:
        out.append("scale_included=0")
    out.append(
        f"{_NEURONS_KEY}="
        + "".join(
            f"({int(c)}, {int(a)}, {float(st):.20e}) "
            for c, a, st in zip(s.num_conns, s.activation, s.steepness, strict=True)
        )
    )
    if with_weights:
        w = s.get_weights()
        out.append(
            f"{_CONNS_KEY}="
            + "".join(f"({int(c)}, {float(x):.20e}) " for c, x in zip(s.conn_src, w, strict=True))
        )
    else:
        out.append(f"{_SRCS_KEY}=" + "".join(f"({int(c)}) " for c in s.conn_src))
    return "\n".join(out) + "\n"


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.pos = 0
        self.source = source

    def fail(self, msg: str) -> InvalidInputError:
        return InvalidInputError(f"{self.source}: line {self.pos}: {msg}")

    def take(self, key: str) -> str:
        while self.pos < len(self.lines) and not self.lines[self.pos].strip():
            self.pos += 1
        if self.pos >= len(self.lines):
            raise self.fail(f"file ends before '{key}='")
        line = self.lines[self.pos]
        self.pos += 1
        name, sep, value = line.partition("=")
        if not sep or name.strip() != key:
            raise self.fail(f"expected '{key}=', found {line[:60]!r}")
        return value.strip()

    def peek_key(self) -> str:
        while self.pos < len(self.lines) and not self.lines[self.pos].strip():
            self.pos += 1
        if self.pos >= len(self.lines):
            return ""
        return self.lines[self.pos].partition("=")[0].strip()

    def number(self, key: str, kind: str) -> float:
        raw = self.take(key)
        try:
            if kind == "u":
                v = int(raw)
                if v < 0:
                    raise ValueError
                return v
            x = float(raw)
        except ValueError:
            want = "non-negative integer" if kind == "u" else "number"
            raise self.fail(f"'{key}' must be a {want}, got {raw!r}") from None
        if not math.isfinite(x):
            raise self.fail(f"'{key}' must be finite, got {raw!r}")
        return x

    def floats(self, key: str, count: int) -> F64:
        raw = self.take(key).split()
        if len(raw) != count:
            raise self.fail(f"'{key}' needs {count} values, got {len(raw)}")
        try:
            arr = np.array([float(v) for v in raw])
        except ValueError:
            raise self.fail(f"'{key}' holds a non-numeric value") from None
        if not np.all(np.isfinite(arr)):
            raise self.fail(f"'{key}' holds NaN or infinity")
        return arr


def parse_net(
    text: str,
    cls: type[Network],
    *,
    source: str = "<network>",
    seed: int | np.random.Generator | None = None,
) -> Network:
    """Parse ``.net`` text into a ``cls`` instance; malformed input raises InvalidInputError."""
    r = _Reader(text, source)
    if not r.lines:
        raise InvalidInputError(f"{source}: empty network file")
    version = r.lines[0].strip()
    r.pos = 1
    if version.startswith("FANN_FIX"):
        raise InvalidInputError(
            f"{source}: fixed-point networks ({version}) are not supported; save the network "
            "from a floating-point FANN build"
        )
    if version not in ("FANN_FLO_2.1", "FANN_FLO_2.0"):
        raise InvalidInputError(
            f"{source}: not a FANN network file (version line {version[:30]!r}; expected "
            "FANN_FLO_2.1 or FANN_FLO_2.0)"
        )
    if r.peek_key() == "decimal_point":
        r.number("decimal_point", "u")
    num_layers = int(r.number("num_layers", "u"))
    if not 2 <= num_layers <= 100_000:
        raise r.fail(f"num_layers must be at least 2, got {num_layers}")
    params: dict[str, float] = {}
    for key, attr, kind in _PARAMS:
        params[attr] = r.number(key, "u" if kind == "u" else "f")
    nf = int(r.number("cascade_activation_functions_count", "u"))
    funcs_raw = r.take("cascade_activation_functions").split()
    ns = int(r.number("cascade_activation_steepnesses_count", "u"))
    steeps = r.floats("cascade_activation_steepnesses", ns)
    if len(funcs_raw) != nf:
        raise r.fail(f"cascade_activation_functions needs {nf} values, got {len(funcs_raw)}")
    try:
        funcs = [ActivationFunc.parse(int(v)) for v in funcs_raw]
    except ValueError:
        raise r.fail("cascade_activation_functions must be integers") from None
    sizes_raw = r.take("layer_sizes").split()
    try:
        sizes = [int(v) for v in sizes_raw]
    except ValueError:
        raise r.fail("layer_sizes must be integers") from None
    if len(sizes) != num_layers or any(v <= 0 for v in sizes):
        raise r.fail(f"layer_sizes must hold {num_layers} positive sizes, got {sizes_raw}")
    total = sum(sizes)
    num_input = sizes[0] - 1
    try:
        net_type = NetType(int(params["network_type"]))
    except ValueError:
        raise r.fail(f"network_type must be 0 or 1, got {params['network_type']}") from None
    num_output = sizes[-1] - 1 if net_type == NetType.LAYER else sizes[-1]
    scale: list[F64] | None = None
    if version == "FANN_FLO_2.1":
        included = int(r.number("scale_included", "u"))
        if included:
            scale = []
            for where, count in (("in", num_input), ("out", num_output)):
                for name in _SCALE_NAMES:
                    scale.append(r.floats(f"{name}_{where}", count))
    neurons = _NEURON_RE.findall(r.take(_NEURONS_KEY))
    if len(neurons) != total:
        raise r.fail(f"layer_sizes announce {total} neurons but {len(neurons)} are listed")
    num_conns = np.array([int(n[0]) for n in neurons], dtype=np.int64)
    act = np.array([int(n[1]) for n in neurons], dtype=np.int64)
    try:
        steep = np.array([float(n[2]) for n in neurons])
    except ValueError:
        raise r.fail("a neuron's steepness is not a number") from None
    if not np.all(np.isfinite(steep)):
        raise r.fail("a neuron's steepness is NaN or infinite")
    key = r.peek_key()
    if key == _SRCS_KEY:
        srcs = _SRC_RE.findall(r.take(_SRCS_KEY))
        conn_src = np.array([int(c) for c in srcs], dtype=np.int64)
        weights = np.zeros(conn_src.shape[0])
    else:
        conns = _CONN_RE.findall(r.take(_CONNS_KEY))
        conn_src = np.array([int(c[0]) for c in conns], dtype=np.int64)
        try:
            weights = np.array([float(c[1]) for c in conns])
        except ValueError:
            raise r.fail("a connection weight is not a number") from None
        if not np.all(np.isfinite(weights)):
            raise r.fail("a connection weight is NaN or infinite")
    if conn_src.shape[0] != int(num_conns.sum()):
        raise r.fail(
            f"neurons announce {int(num_conns.sum())} connections but "
            f"{conn_src.shape[0]} are listed"
        )
    try:
        structure = Structure(sizes, num_conns, act, steep, conn_src, weights)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{source}: {exc.message}") from None
    net = cls(
        structure,
        network_type=net_type,
        connection_rate=params["connection_rate"],
        seed=seed,
    )
    for _key, attr, kind in _PARAMS:
        if attr in ("network_type", "connection_rate"):
            continue
        value = params[attr]
        if attr == "training_algorithm":
            net.training_algorithm = TrainingAlgorithm.parse(int(value))
        elif attr == "train_error_function":
            net.train_error_function = ErrorFunc(min(int(value), 1))
        elif attr == "train_stop_function":
            net.train_stop_function = StopFunc(min(int(value), 1))
        elif kind == "u":
            setattr(net, attr, int(value))
        else:
            setattr(net, attr, float(value))
    net.cascade_activation_functions = funcs
    net.cascade_activation_steepnesses = [float(v) for v in steeps]
    if scale is not None:
        net.scale_in = (scale[0], scale[1], scale[2], scale[3])
        net.scale_out = (scale[4], scale[5], scale[6], scale[7])
    return net
