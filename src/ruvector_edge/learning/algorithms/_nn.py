"""Small numpy neural-network pieces: a ReLU MLP with manual backprop, Adam, Huber loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

F64: TypeAlias = NDArray[np.float64]

__all__ = ["MLP", "Adam", "clip_global_norm", "huber"]


class Adam:
    """Adam (Kingma & Ba 2015) updating a list of numpy parameter arrays in place."""

    def __init__(
        self,
        params: Sequence[F64],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, grads: Sequence[F64]) -> None:
        """One descent step along ``grads`` (same order and shapes as the parameters)."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # Bias corrections folded into the step size.
        step = self.lr * math.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            np.multiply(m, b1, out=m)
            np.add(m, (1.0 - b1) * g, out=m)
            np.multiply(v, b2, out=v)
            np.add(v, (1.0 - b2) * (g * g), out=v)
            np.subtract(p, step * m / (np.sqrt(v) + self.eps), out=p)


def clip_global_norm(grads: Sequence[F64], max_norm: float) -> float:
    """Scale ``grads`` in place so their joint L2 norm is at most ``max_norm``; returns
    the norm before clipping."""
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if norm > max_norm > 0.0:
        scale = max_norm / norm
        for g in grads:
            np.multiply(g, scale, out=g)
    return norm


def huber(delta: F64, k: float = 1.0) -> tuple[float, F64]:
    """Mean Huber loss of ``delta`` and its gradient with respect to ``delta``."""
    a = np.abs(delta)
    loss = np.where(a <= k, 0.5 * delta * delta, k * (a - 0.5 * k))
    n = max(delta.shape[0], 1)
    return float(loss.mean()), np.clip(delta, -k, k) / n


class MLP:
    """Fully connected network, ReLU hidden layers, linear output; float64.

    ``params`` is ``[W0, b0, W1, b1, ...]`` with ``W_i`` of shape ``(fan_in, fan_out)``.
    Hidden layers use He initialization; the output layer starts small so initial values
    sit near zero.
    """

    def __init__(self, sizes: Sequence[int], rng: np.random.Generator) -> None:
        self.sizes = tuple(int(s) for s in sizes)
        self.params: list[F64] = []
        last = len(self.sizes) - 2
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            std = math.sqrt(2.0 / fan_in) if i < last else 0.1 / math.sqrt(fan_in)
            self.params.append(rng.standard_normal((fan_in, fan_out)) * std)
            self.params.append(np.zeros(fan_out))

    def forward(self, x: F64) -> tuple[F64, list[F64]]:
        """Outputs for a batch ``x`` (rows) and the activations backward needs."""
        acts = [x]
        h = x
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            z = h @ self.params[2 * i] + self.params[2 * i + 1]
            h = np.maximum(z, 0.0) if i < n_layers - 1 else z
            acts.append(h)
        return h, acts

    def predict(self, x: F64) -> F64:
        """Outputs only."""
        return self.forward(x)[0]

    def backward(self, acts: list[F64], dout: F64) -> list[F64]:
        """Gradients of the parameters given ``dLoss/dOutput``."""
        n_layers = len(self.params) // 2
        grads: list[F64] = [np.empty(0)] * len(self.params)
        d = dout
        for i in range(n_layers - 1, -1, -1):
            h_in = acts[i]
            grads[2 * i] = h_in.T @ d
            grads[2 * i + 1] = d.sum(axis=0)
            if i > 0:
                d = (d @ self.params[2 * i].T) * (h_in > 0.0)
        return grads

    def copy_from(self, other: MLP) -> None:
        """Overwrite these weights with ``other``'s (target-network sync)."""
        for p, q in zip(self.params, other.params, strict=True):
            p[...] = q
