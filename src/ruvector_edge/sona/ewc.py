"""EWC++: online diagonal Fisher, task-boundary detection, a lambda schedule, and a penalty
that is actually applied to every adapter update.

Per adapter (its own parameter count, so dimensions always match):

* **Fisher.** ``F <- d*F + (1-d)*grad**2`` after every update (``fisher_ema_decay``),
  bias-corrected like Adam's moments.
* **Consolidation.** At a task boundary the current bias-corrected Fisher, normalised to
  mean 1, is folded into the consolidated importance ``Omega <- gamma*Omega + F_task``
  (``gamma = task_decay``) and the anchor ``theta* <- theta``.
* **Penalty.** Each step ascends ``J(theta) - lambda/2 * sum Omega (theta - theta*)^2``.
  It is taken in proximal (implicit) form,
  ``theta <- theta* + (theta + lr*grad - theta*) / (1 + lr*lambda*Omega)``,
  which is stable for any ``lambda`` (an explicit step diverges once ``lr*lambda*Omega > 2``).
* **Lambda schedule.** ``lambda_k = clamp(initial_lambda * (1 + lambda_growth)**(k-1),
  min_lambda, max_lambda)`` after ``k`` consolidated tasks: older knowledge accumulates and
  is protected a little more with each task.
* **Boundary detection** (:class:`TaskBoundaryDetector`): the mean of the last ``window``
  query embeddings is compared with the mean of the window before it; a jump above
  ``boundary_threshold`` (squared standard errors, averaged over dimensions) in two
  consecutive checks signals a new task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ruvector_edge.errors import ConfigError, DimensionError
from ruvector_edge.sona._util import F32

__all__ = ["EwcConfig", "EwcPlusPlus", "TaskBoundaryDetector"]


@dataclass
class EwcConfig:
    """EWC++ settings (seed names where it had them)."""

    param_count: int
    initial_lambda: float = 2000.0
    min_lambda: float = 100.0
    max_lambda: float = 15000.0
    lambda_growth: float = 0.1
    fisher_ema_decay: float = 0.99
    task_decay: float = 0.9
    max_tasks: int = 10
    boundary_threshold: float = 8.0
    gradient_history_size: int = 100
    normalize_fisher: bool = False

    def __post_init__(self) -> None:
        if self.param_count < 1:
            raise ConfigError(f"EwcConfig.param_count must be >= 1, got {self.param_count}")
        if not 0.0 <= self.fisher_ema_decay < 1.0 or not 0.0 <= self.task_decay <= 1.0:
            raise ConfigError("EwcConfig decays must lie in [0, 1)")
        if self.initial_lambda < 0 or self.min_lambda < 0 or self.max_lambda < self.min_lambda:
            raise ConfigError("EwcConfig lambdas must satisfy 0 <= min_lambda <= max_lambda")


class EwcPlusPlus:
    """Online EWC for one flat parameter vector."""

    def __init__(self, config: EwcConfig) -> None:
        self.config = config
        n = config.param_count
        self._fisher: F32 = np.zeros(n, dtype=np.float32)
        self._fisher_steps = 0
        self._omega: F32 = np.zeros(n, dtype=np.float32)
        self._anchor: F32 | None = None
        self._tasks = 0
        self.enabled = config.initial_lambda > 0

    @property
    def param_count(self) -> int:
        """Length of the parameter vector this instance protects."""
        return self.config.param_count

    def task_count(self) -> int:
        """Number of consolidated tasks (seed name)."""
        return self._tasks

    @property
    def current_lambda(self) -> float:
        """Penalty strength now (0 before the first consolidation)."""
        if self._tasks == 0 or not self.enabled:
            return 0.0
        c = self.config
        lam = c.initial_lambda * (1.0 + c.lambda_growth) ** (self._tasks - 1)
        return float(min(max(lam, c.min_lambda), c.max_lambda))

    def fisher(self) -> F32:
        """Bias-corrected running Fisher diagonal (a copy)."""
        if self._fisher_steps == 0:
            return self._fisher.copy()
        corr = 1.0 - self.config.fisher_ema_decay**self._fisher_steps
        return (self._fisher / np.float32(max(corr, 1e-12))).astype(np.float32)

    def importance(self) -> F32:
        """Consolidated importance ``Omega`` (a copy)."""
        return self._omega.copy()

    def anchor(self) -> F32 | None:
        """Parameters at the last consolidation (a copy) or ``None``."""
        return None if self._anchor is None else self._anchor.copy()

    def _check(self, vec: F32, what: str) -> None:
        if vec.shape != (self.config.param_count,):
            raise DimensionError(
                f"EWC {what} has length {vec.shape}, expected ({self.config.param_count},)"
            )

    def update_fisher(self, grad: F32) -> None:
        """Fold one gradient into the online Fisher estimate."""
        self._check(grad, "gradient")
        d = np.float32(self.config.fisher_ema_decay)
        self._fisher *= d
        self._fisher += (np.float32(1.0) - d) * (grad * grad)
        self._fisher_steps += 1

    def penalty(self, params: F32) -> float:
        """``lambda/2 * sum Omega (theta - theta*)^2`` (0 before any consolidation)."""
        self._check(params, "parameters")
        if self._anchor is None:
            return 0.0
        diff = params - self._anchor
        return 0.5 * self.current_lambda * float(np.dot(self._omega, diff * diff))

    def step(self, params: F32, grad: F32, lr: float, direction: F32 | None = None) -> F32:
        """One penalised ascent step along ``direction`` (default ``grad``, e.g. an Adam
        direction); the Fisher is updated from ``grad``. Returns new parameters."""
        self._check(params, "parameters")
        self.update_fisher(grad)
        new = params + np.float32(lr) * (grad if direction is None else direction)
        lam = self.current_lambda
        if self._anchor is None or lam <= 0.0:
            return new.astype(np.float32)
        shrink = np.float32(1.0) + np.float32(lr * lam) * self._omega
        return (self._anchor + (new - self._anchor) / shrink).astype(np.float32)

    def consolidate(self, params: F32) -> None:
        """Mark a task boundary: fold the Fisher into ``Omega`` and anchor at ``params``."""
        self._check(params, "parameters")
        f = self.fisher()
        if self.config.normalize_fisher:
            mean = float(f.mean())
            if mean > 0:
                f = f / np.float32(mean)
        self._omega = (np.float32(self.config.task_decay) * self._omega + f).astype(np.float32)
        if self._tasks >= self.config.max_tasks:
            self._omega *= np.float32(self.config.max_tasks / (self._tasks + 1))
        self._anchor = params.astype(np.float32, copy=True)
        self._tasks += 1
        self._fisher[:] = 0.0
        self._fisher_steps = 0

    # -- state -------------------------------------------------------------------------
    def state(self) -> dict[str, object]:
        """Arrays and counters for state files."""
        return {
            "fisher": self._fisher.copy(),
            "fisher_steps": self._fisher_steps,
            "omega": self._omega.copy(),
            "anchor": None if self._anchor is None else self._anchor.copy(),
            "tasks": self._tasks,
        }

    def load(
        self, fisher: F32, fisher_steps: int, omega: F32, anchor: F32 | None, tasks: int
    ) -> None:
        """Restore :meth:`state` output (lengths checked)."""
        self._check(fisher, "fisher")
        self._check(omega, "importance")
        if anchor is not None:
            self._check(anchor, "anchor")
        self._fisher = fisher.astype(np.float32, copy=True)
        self._fisher_steps = int(fisher_steps)
        self._omega = omega.astype(np.float32, copy=True)
        self._anchor = None if anchor is None else anchor.astype(np.float32, copy=True)
        self._tasks = int(tasks)


class TaskBoundaryDetector:
    """Detects a shift in the query distribution between two consecutive windows.

    Keeps the last ``2 * window`` embeddings in a ring buffer and, every ``check_every``
    observations, compares the newer half with the older half with two statistics:

    * mean shift: the mean over dimensions of
      ``(mean_old - mean_new)**2 / (2 * pooled_var / window)`` (about 1 without a shift);
    * novelty: median distance from a new query to its nearest old query over the median
      nearest-neighbour distance inside the old half (about 1 without a shift; new topics
      among many clusters raise it even when the overall mean barely moves).

    A boundary needs ``persistence`` consecutive checks with either statistic above its
    threshold. A change of targets on the *same* queries is invisible here: mark it with
    ``SonaEngine.mark_task_boundary()``.
    """

    def __init__(
        self,
        dim: int,
        *,
        window: int = 100,
        threshold: float = 8.0,
        novelty_threshold: float = 1.25,
        check_every: int = 20,
        persistence: int = 2,
    ) -> None:
        if window < 2:
            raise ConfigError("boundary window must be >= 2")
        self.dim = dim
        self.window = window
        self.threshold = threshold
        self.novelty_threshold = novelty_threshold
        self.check_every = max(1, check_every)
        self.last_novelty = 0.0
        self.persistence = max(1, persistence)
        self._over = 0
        self._buf: F32 = np.zeros((2 * window, dim), dtype=np.float32)
        self._n = 0  # observations since the last reset
        self._pos = 0  # next ring slot
        self.last_score = 0.0

    def observe(self, x: F32) -> bool:
        """Add one query embedding; return True when a boundary is detected (then reset)."""
        w = self.window
        self._buf[self._pos] = x
        self._pos = (self._pos + 1) % (2 * w)
        self._n += 1
        if self._n < 2 * w or self._n % self.check_every:
            return False
        order = (np.arange(2 * w) + self._pos) % (2 * w)  # oldest first
        old, new = self._buf[order[:w]], self._buf[order[w:]]
        var = 0.5 * (old.var(axis=0) + new.var(axis=0)) + 1e-8
        diff = old.mean(axis=0) - new.mean(axis=0)
        stat = float(np.mean(diff * diff / (2.0 * var / w)))
        novelty = _novelty(old, new)
        self.last_score = stat
        self.last_novelty = novelty
        shifted = stat > self.threshold or novelty > self.novelty_threshold
        self._over = self._over + 1 if shifted else 0
        if self._over >= self.persistence:
            self._n = 0
            self._over = 0
            return True
        return False

    def reset(self) -> None:
        """Forget the history (after an explicit task boundary)."""
        self._n = 0
        self._over = 0


def _novelty(old: F32, new: F32) -> float:
    """Median new-to-old nearest-neighbour distance over the median old-to-old one."""
    oo = np.einsum("ij,ij->i", old, old)
    nn = np.einsum("ij,ij->i", new, new)
    d_no = nn[:, None] - 2.0 * (new @ old.T) + oo[None, :]
    d_oo = oo[:, None] - 2.0 * (old @ old.T) + oo[None, :]
    np.fill_diagonal(d_oo, np.inf)
    cross = float(np.median(np.maximum(d_no.min(axis=1), 0.0)))
    inside = float(np.median(np.maximum(d_oo.min(axis=1), 0.0)))
    return float(np.sqrt(cross / max(inside, 1e-12)))
