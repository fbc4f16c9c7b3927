"""FANN-compatible neural networks: each swarm agent can own, train and ship one.

* :class:`Network` — libfann's feature set without the ``fann_`` prefix: standard, sparse
  and shortcut topologies, 20 activation functions, INCREMENTAL / BATCH / RPROP /
  QUICKPROP / SARPROP training, cascade-correlation, scaling, and libfann's
  ``FANN_FLO_2.1`` ``.net`` files (loadable by the C library and back).
* :class:`TrainingData` — FANN ``.data`` files, scaling, shuffle, merge, subset.
* ``Network.to_bytes(level)`` / ``Network.from_bytes(blob)`` — compact blobs through
  :class:`ruvector_edge.codec.TensorCodec` (lossless or quantized weights).

Batch algorithms run as whole-data-set matrix products (numpy/BLAS).
"""

from __future__ import annotations

from ruvector_edge.neural.activation import (
    SYMMETRIC_FUNCTIONS,
    ActivationFunc,
    ErrorFunc,
    NetType,
    StopFunc,
    TrainingAlgorithm,
)
from ruvector_edge.neural.data import TrainingData
from ruvector_edge.neural.network import Network, TrainCallback

__all__ = [
    "SYMMETRIC_FUNCTIONS",
    "ActivationFunc",
    "ErrorFunc",
    "NetType",
    "Network",
    "StopFunc",
    "TrainCallback",
    "TrainingAlgorithm",
    "TrainingData",
]
