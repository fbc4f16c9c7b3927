"""``TrainingData``: FANN's ``struct fann_train_data`` and its ``.data`` text format.

A ``.data`` file is ``num_data num_input num_output`` on the first line, then for each
pair one line of inputs and one line of outputs, whitespace separated.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ruvector_edge.errors import DimensionError, InvalidInputError, StorageError

__all__ = ["TrainingData"]

F64 = npt.NDArray[np.float64]
MAX_DATA_ELEMENTS = 1 << 31  # refuse headers announcing absurd sizes before allocating


def _as_matrix(values: npt.ArrayLike, name: str) -> F64:
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric: {exc}") from None
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1) if arr.size else arr.reshape(0, 0)
    if arr.ndim != 2:
        raise DimensionError(f"{name} must be a 2-D array (samples x values), got {arr.ndim}-D")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} contains NaN or infinity")
    return np.ascontiguousarray(arr)


class TrainingData:
    """Input/output pairs for training and testing (``fann_train_data``)."""

    __slots__ = ("input", "output")

    def __init__(self, inputs: npt.ArrayLike, outputs: npt.ArrayLike) -> None:
        self.input: F64 = _as_matrix(inputs, "inputs")
        self.output: F64 = _as_matrix(outputs, "outputs")
        if self.input.shape[0] != self.output.shape[0]:
            raise DimensionError(
                f"inputs have {self.input.shape[0]} rows but outputs have "
                f"{self.output.shape[0]}; give one output row per input row"
            )

    # ---------------------------------------------------------------- construction
    @classmethod
    def create_train(cls, num_data: int, num_input: int, num_output: int) -> TrainingData:
        """Zero-filled data of the given size (``fann_create_train``)."""
        for name, v in (("num_data", num_data), ("num_input", num_input)):
            if v < 0:
                raise InvalidInputError(f"{name} must be >= 0, got {v}")
        if num_output < 0:
            raise InvalidInputError(f"num_output must be >= 0, got {num_output}")
        return cls(np.zeros((num_data, num_input)), np.zeros((num_data, num_output)))

    @classmethod
    def read_train_from_file(cls, path: str | os.PathLike[str]) -> TrainingData:
        """Read a FANN ``.data`` file; malformed files raise :class:`InvalidInputError`."""
        try:
            text = Path(path).read_text(encoding="ascii", errors="strict")
        except FileNotFoundError:
            raise StorageError(f"training data file {os.fspath(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read training data {os.fspath(path)!r}: {exc}") from None
        return cls.from_text(text, source=os.fspath(path))

    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>") -> TrainingData:
        """Parse the ``.data`` format from a string."""
        tokens = text.split()
        if len(tokens) < 3:
            raise InvalidInputError(
                f"{source}: header must be 'num_data num_input num_output', got {text[:40]!r}"
            )
        try:
            n, n_in, n_out = (int(t) for t in tokens[:3])
        except ValueError:
            raise InvalidInputError(
                f"{source}: header must hold three non-negative integers, got {tokens[:3]}"
            ) from None
        if min(n, n_in, n_out) < 0 or n * (n_in + n_out) > MAX_DATA_ELEMENTS:
            raise InvalidInputError(f"{source}: invalid sizes {n} {n_in} {n_out} in header")
        expected = n * (n_in + n_out)
        body = tokens[3:]
        if len(body) != expected:
            raise InvalidInputError(
                f"{source}: header announces {n} pairs of {n_in} inputs and {n_out} outputs "
                f"({expected} numbers) but the file holds {len(body)} numbers"
            )
        try:
            values = np.array(body, dtype=np.float64) if body else np.zeros(0)
        except ValueError as exc:
            raise InvalidInputError(f"{source}: non-numeric value in data: {exc}") from None
        rows = values.reshape(n, n_in + n_out)
        return cls(rows[:, :n_in].reshape(n, n_in), rows[:, n_in:].reshape(n, n_out))

    def to_text(self) -> str:
        """The ``.data`` text (``%.20e`` numbers, as libdoublefann writes them)."""
        lines = [f"{self.length} {self.num_input} {self.num_output}"]
        for x, y in zip(self.input, self.output, strict=True):
            lines.append(" ".join(f"{v:.20e}" for v in x) + " ")
            lines.append(" ".join(f"{v:.20e}" for v in y) + " ")
        return "\n".join(lines) + "\n"

    def save_train(self, path: str | os.PathLike[str]) -> None:
        """Write a FANN ``.data`` file (``fann_save_train``)."""
        try:
            Path(path).write_text(self.to_text(), encoding="ascii")
        except OSError as exc:
            raise StorageError(f"cannot write training data {os.fspath(path)!r}: {exc}") from None

    # ---------------------------------------------------------------- accessors
    @property
    def length(self) -> int:
        """Number of pairs (``fann_length_train_data``)."""
        return int(self.input.shape[0])

    def __len__(self) -> int:
        return self.length

    @property
    def num_input(self) -> int:
        """Inputs per pair."""
        return int(self.input.shape[1])

    @property
    def num_output(self) -> int:
        """Outputs per pair."""
        return int(self.output.shape[1])

    def __repr__(self) -> str:
        return f"TrainingData(length={self.length}, in={self.num_input}, out={self.num_output})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrainingData):
            return NotImplemented
        return bool(
            self.input.shape == other.input.shape
            and self.output.shape == other.output.shape
            and np.array_equal(self.input, other.input)
            and np.array_equal(self.output, other.output)
        )

    __hash__ = None  # type: ignore[assignment]

    def duplicate(self) -> TrainingData:
        """A deep copy (``fann_duplicate_train_data``)."""
        return TrainingData(self.input.copy(), self.output.copy())

    def _check_nonempty(self) -> None:
        if self.length == 0:
            raise InvalidInputError("training data is empty")

    def get_min_input(self) -> float:
        """Smallest input value."""
        self._check_nonempty()
        return float(self.input.min())

    def get_max_input(self) -> float:
        """Largest input value."""
        self._check_nonempty()
        return float(self.input.max())

    def get_min_output(self) -> float:
        """Smallest output value."""
        self._check_nonempty()
        return float(self.output.min())

    def get_max_output(self) -> float:
        """Largest output value."""
        self._check_nonempty()
        return float(self.output.max())

    # ---------------------------------------------------------------- transforms
    def shuffle(self, rng: np.random.Generator | int | None = None) -> None:
        """Shuffle the pairs in place, keeping each input with its output."""
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        perm = gen.permutation(self.length)
        self.input = self.input[perm]
        self.output = self.output[perm]

    def merge(self, other: TrainingData) -> TrainingData:
        """A new set holding this set's pairs then ``other``'s (``fann_merge_train_data``)."""
        if (self.num_input, self.num_output) != (other.num_input, other.num_output):
            raise DimensionError(
                f"cannot merge data with {other.num_input} inputs/{other.num_output} outputs "
                f"into data with {self.num_input}/{self.num_output}"
            )
        return TrainingData(
            np.vstack([self.input, other.input]), np.vstack([self.output, other.output])
        )

    def subset(self, pos: int, length: int) -> TrainingData:
        """``length`` pairs starting at ``pos`` (``fann_subset_train_data``)."""
        if pos < 0 or length < 0 or pos + length > self.length:
            raise InvalidInputError(
                f"subset [{pos}, {pos + length}) is outside the data's {self.length} pairs"
            )
        return TrainingData(
            self.input[pos : pos + length].copy(), self.output[pos : pos + length].copy()
        )

    @staticmethod
    def _scale(arr: F64, new_min: float, new_max: float) -> F64:
        if arr.size == 0:
            return arr
        old_min, old_max = float(arr.min()), float(arr.max())
        if new_max < new_min:
            raise InvalidInputError(f"new_max {new_max} is below new_min {new_min}")
        if old_max == old_min:
            raise InvalidInputError("cannot scale: all values are equal (zero range)")
        factor = (new_max - new_min) / (old_max - old_min)
        return np.clip((arr - old_min) * factor + new_min, new_min, new_max)

    def scale_input_train_data(self, new_min: float, new_max: float) -> None:
        """Linearly map all inputs to ``[new_min, new_max]`` (global min/max, as libfann)."""
        self.input = self._scale(self.input, new_min, new_max)

    def scale_output_train_data(self, new_min: float, new_max: float) -> None:
        """Linearly map all outputs to ``[new_min, new_max]``."""
        self.output = self._scale(self.output, new_min, new_max)

    def scale_train_data(self, new_min: float, new_max: float) -> None:
        """Scale inputs and outputs independently to ``[new_min, new_max]``."""
        self.scale_input_train_data(new_min, new_max)
        self.scale_output_train_data(new_min, new_max)
