"""Neural-network benchmark: ``ruvector_edge.neural`` against libfann (C) in the same run.

Run: ``python -m benchmarks.bench_neural`` (``BENCH_QUICK=1`` for a short run).

Both sides start from the very same ``.net`` file (same topology, weights, activation
functions, algorithm and parameters) and train on the very same ``.data`` file. libfann is
timed by a tiny C program compiled here with gcc against Debian's libdoublefann (so no
Python/ctypes overhead is charged to it); without gcc or libfann-dev the C columns are
empty and a note says why.

Workloads: XOR 2-3-1 (RPROP, INCREMENTAL); a synthetic 10,000 x 64 -> 64 -> 10
classification set (10 Gaussian classes, seed 0) with BATCH, RPROP, QUICKPROP and one
INCREMENTAL epoch; cascade-correlation on two spirals (194 points); inference per sample
(``run``) and batched (``run_batch`` over 10,000 samples vs a C loop of ``fann_run``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import QUICK, Report
from ruvector_edge.neural import (
    ActivationFunc,
    Network,
    TrainingAlgorithm,
    TrainingData,
)

COLUMNS = (
    "workload",
    "algorithm",
    "epochs",
    "ours epochs/s",
    "libfann epochs/s",
    "ratio",
    "ours MSE",
    "libfann MSE",
)

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <doublefann.h>

static double now(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  /* usage: bench train NET DATA EPOCHS | run NET DATA REPS | cascade NET DATA MAX_NEURONS */
  if (argc != 5) return 2;
  struct fann *ann = fann_create_from_file(argv[2]);
  struct fann_train_data *data = fann_read_train_from_file(argv[3]);
  if (!ann || !data) return 3;
  int n = atoi(argv[4]);
  double t0 = now(), mse = 0;
  if (!strcmp(argv[1], "train")) {
    for (int e = 0; e < n; e++) mse = fann_train_epoch(ann, data);
  } else if (!strcmp(argv[1], "run")) {
    double acc = 0;
    for (int r = 0; r < n; r++)
      for (unsigned i = 0; i < fann_length_train_data(data); i++)
        acc += fann_run(ann, data->input[i])[0];
    mse = acc;
  } else {
    fann_cascadetrain_on_data(ann, data, n, 0, 0.0);
  }
  double t1 = now();
  if (!strcmp(argv[1], "cascade")) mse = fann_test_data(ann, data);
  printf("%.9f %.12g %u\n", t1 - t0, mse, fann_get_total_neurons(ann));
  return 0;
}
"""


class CBench:
    """The compiled C timing program (or the reason it is unavailable)."""

    def __init__(self, workdir: Path) -> None:
        self.exe: Path | None = None
        self.reason = ""
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            self.reason = "no C compiler; libfann columns empty"
            return
        if not Path("/usr/include/doublefann.h").exists():
            self.reason = "libfann-dev headers missing (apt-get install libfann-dev)"
            return
        src = workdir / "bench.c"
        src.write_text(C_SOURCE)
        exe = workdir / "bench"
        res = subprocess.run(
            [gcc, "-O2", str(src), "-o", str(exe), "-ldoublefann", "-lm"],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            self.reason = f"could not build the libfann timer: {res.stderr.strip()[:200]}"
            return
        self.exe = exe

    def __call__(self, mode: str, net: Path, data: Path, n: int) -> tuple[float, float, int]:
        assert self.exe is not None
        out = subprocess.run(
            [str(self.exe), mode, str(net), str(data), str(n)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return float(out[0]), float(out[1]), int(out[2])


def xor() -> TrainingData:
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return TrainingData(x, np.array([[0.0], [1.0], [1.0], [0.0]]))


def classification(n: int = 10_000, dim: int = 64, classes: int = 10) -> TrainingData:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, dim))
    labels = rng.integers(classes, size=n)
    x = centres[labels] + 1.5 * rng.normal(size=(n, dim))
    x /= np.abs(x).max()
    y = np.full((n, classes), -1.0)
    y[np.arange(n), labels] = 1.0
    return TrainingData(x, y)


def spirals(points: int = 97) -> TrainingData:
    i = np.arange(points)
    phi = i / 16 * np.pi
    r = 6.5 * (104 - i) / 104
    xy = np.c_[r * np.cos(phi), r * np.sin(phi)] / 6.5
    return TrainingData(
        np.vstack([xy, -xy]), np.r_[np.ones(points), -np.ones(points)].reshape(-1, 1)
    )


def _train_row(  # noqa: PLR0917 - one row of the table
    report: Report,
    cbench: CBench,
    tmp: Path,
    name: str,
    net: Network,
    data: TrainingData,
    algo: TrainingAlgorithm,
    epochs: int,
) -> dict[str, Any]:
    net.training_algorithm = algo
    net_path, data_path = tmp / f"{name}-{algo.name}.net", tmp / f"{name}.data"
    net.save(net_path)
    if not data_path.exists():
        data.save_train(data_path)
    ours = Network.from_file(net_path)  # identical start for both sides
    start = time.perf_counter()
    mse = 0.0
    for _ in range(epochs):
        mse = ours.train_epoch(data)
    ours_s = time.perf_counter() - start
    row: dict[str, Any] = {
        "workload": name,
        "algorithm": algo.name.lower(),
        "epochs": epochs,
        "ours epochs/s": epochs / ours_s,
        "ours MSE": mse,
    }
    if cbench.exe is not None:
        c_s, c_mse, _ = cbench("train", net_path, data_path, epochs)
        row["libfann epochs/s"] = epochs / c_s
        row["libfann MSE"] = c_mse
        row["ratio"] = c_s / ours_s
    report.add(**row)
    return row


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """libfann is single-threaded; give numpy one BLAS thread too (if threadpoolctl exists)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - dev dependency missing
        return contextlib.nullcontext()
    limits: contextlib.AbstractContextManager[object] = threadpool_limits(1)
    return limits


def main() -> None:
    """Run the benchmark, print the tables and save ``benchmarks/results/neural.json``."""
    report = Report("neural", COLUMNS)
    with _one_blas_thread():
        _run(report)
    report.print()
    path = report.save()
    print(f"results: {path}")


def _run(report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        cbench = CBench(tmp)
        if cbench.reason:
            report.notes.append(cbench.reason)

        # ---- XOR 2-3-1
        for algo, epochs in (
            (TrainingAlgorithm.RPROP, 100),
            (TrainingAlgorithm.INCREMENTAL, 200 if QUICK else 1000),
        ):
            net = Network.create_standard([2, 3, 1], seed=0)
            _train_row(report, cbench, tmp, "xor 2-3-1", net, xor(), algo, epochs)

        # ---- 10,000 x 64 -> 64 -> 10
        cls = classification(2_000 if QUICK else 10_000)
        name = f"{cls.length} x 64-64-10"
        batch_rows: list[dict[str, Any]] = []
        for algo, epochs in (
            (TrainingAlgorithm.BATCH, 3 if QUICK else 20),
            (TrainingAlgorithm.RPROP, 3 if QUICK else 20),
            (TrainingAlgorithm.QUICKPROP, 3 if QUICK else 20),
            (TrainingAlgorithm.INCREMENTAL, 1),
        ):
            net = Network.create_standard([64, 64, 10], seed=1)
            net.set_activation_function_hidden(ActivationFunc.SIGMOID_SYMMETRIC)
            net.set_activation_function_output(ActivationFunc.SIGMOID_SYMMETRIC)
            net.learning_rate = 0.1 if algo == TrainingAlgorithm.INCREMENTAL else 0.7
            row = _train_row(report, cbench, tmp, name, net, cls, algo, epochs)
            if algo != TrainingAlgorithm.INCREMENTAL:
                batch_rows.append(row)
        for row in batch_rows:
            if "ratio" in row:
                report.target(f"{row['algorithm']} epochs/s vs libfann", row["ratio"], 1.0)

        # ---- cascade on two spirals
        sp = spirals()
        max_neurons = 6 if QUICK else 20
        net = Network.create_shortcut([2, 1], seed=0)
        net.set_activation_function_output(ActivationFunc.SIGMOID_SYMMETRIC)
        net_path, data_path = tmp / "spiral.net", tmp / "spiral.data"
        net.save(net_path)
        sp.save_train(data_path)
        ours = Network.from_file(net_path)
        start = time.perf_counter()
        total_epochs = ours.cascadetrain_on_data(sp, max_neurons, 0, 0.0)
        ours_s = time.perf_counter() - start
        row = {
            "workload": f"two spirals, cascade {max_neurons} neurons",
            "algorithm": "cascade+rprop",
            "epochs": total_epochs,
            "ours epochs/s": total_epochs / ours_s,
            "ours MSE": ours.test_data(sp),
        }
        if cbench.exe is not None:
            c_s, c_mse, c_neurons = cbench("cascade", net_path, data_path, max_neurons)
            row["libfann MSE"] = c_mse
            row["ratio"] = c_s / ours_s
            report.notes.append(
                f"cascade: ours {ours_s:.2f} s, {ours.total_neurons} neurons; libfann "
                f"{c_s:.2f} s, {c_neurons} neurons (libfann epochs are not exposed; ratio is "
                "wall time)"
            )
        report.add(**row)

        # ---- inference
        net = Network.create_standard([64, 64, 10], seed=1)
        net.set_activation_function_hidden(ActivationFunc.SIGMOID_SYMMETRIC)
        net_path = tmp / "infer.net"
        net.save(net_path)
        x = cls.input
        reps = 3
        single_n = 2000
        start = time.perf_counter()
        for i in range(single_n):
            net.run(x[i])
        ours_single = (time.perf_counter() - start) / single_n
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            net.run_batch(x)
            best = min(best, time.perf_counter() - start)
        ours_batch = x.shape[0] / best
        inf_row: dict[str, Any] = {
            "workload": "inference 64-64-10",
            "algorithm": "run / run_batch",
            "epochs": x.shape[0],
            "ours epochs/s": ours_batch,
        }
        c_single = float("nan")
        if cbench.exe is not None:
            c_s, _, _ = cbench("run", net_path, tmp / f"{name}.data", reps)
            c_single = c_s / (reps * x.shape[0])
            inf_row["libfann epochs/s"] = 1.0 / c_single
            inf_row["ratio"] = ours_batch * c_single
            report.target("batched inference samples/s vs libfann", inf_row["ratio"], 1.0)
        report.add(**inf_row)
        report.notes.append(
            "inference row: 'epochs/s' columns are samples/s (ours batched run_batch vs "
            "libfann's fann_run loop in C)"
        )
        report.notes.append(
            f"single-sample latency: ours run() {ours_single * 1e6:.1f} us/sample, libfann "
            f"fann_run {c_single * 1e6:.2f} us/sample (Python call overhead dominates ours)"
        )
        report.notes.append(
            "ours ran with 1 BLAS thread (threadpoolctl), like single-threaded libfann; "
            f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )


if __name__ == "__main__":
    main()
