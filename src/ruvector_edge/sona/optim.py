"""Adam for adapter updates.

REINFORCE gradients are noisy and their scale depends on the dimension and the quality
range; Adam's per-parameter normalisation makes the seed's learning rates (``0.002`` for
MicroLoRA, ``0.0001`` for BaseLoRA) mean "about this much change per step" whatever the
dimension. The raw gradient still feeds the EWC Fisher estimate.
"""

from __future__ import annotations

import numpy as np

from ruvector_edge.errors import DimensionError
from ruvector_edge.sona._util import F32

__all__ = ["Adam"]


class Adam:
    """Adam moments for one flat parameter vector (ascent direction, bias-corrected)."""

    __slots__ = ("beta1", "beta2", "eps", "m", "steps", "v")

    def __init__(
        self, size: int, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.m: F32 = np.zeros(size, dtype=np.float32)
        self.v: F32 = np.zeros(size, dtype=np.float32)
        self.steps = 0

    def direction(self, grad: F32) -> F32:
        """Fold in ``grad`` and return the step direction ``m_hat / (sqrt(v_hat) + eps)``."""
        if grad.shape != self.m.shape:
            raise DimensionError(f"gradient has shape {grad.shape}, expected {self.m.shape}")
        self.steps += 1
        b1, b2 = np.float32(self.beta1), np.float32(self.beta2)
        self.m *= b1
        self.m += (np.float32(1.0) - b1) * grad
        self.v *= b2
        self.v += (np.float32(1.0) - b2) * (grad * grad)
        c1 = 1.0 - self.beta1**self.steps
        c2 = 1.0 - self.beta2**self.steps
        out: F32 = (
            (self.m / np.float32(c1)) / (np.sqrt(self.v / np.float32(c2)) + self.eps)
        ).astype(np.float32)
        return out

    def load(self, m: F32, v: F32, steps: int) -> None:
        """Restore moments (shapes checked)."""
        if m.shape != self.m.shape or v.shape != self.v.shape:
            raise DimensionError("Adam moments do not match the parameter count")
        self.m = m.astype(np.float32, copy=True)
        self.v = v.astype(np.float32, copy=True)
        self.steps = int(steps)
