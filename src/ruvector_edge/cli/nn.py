"""``ruvector-edge nn``: train and run FANN-compatible networks from the command line.

``nn train DATA.data --layers 2,3,1 --out net.net`` trains with a progress bar and prints a
summary table; ``nn run net.net X1 X2 ...`` prints the outputs. ``nn info net.net``
describes a network file. Files are libfann's ``.data``/``.net`` formats.

Exit codes: 0 on success, 2 for bad flags, unreadable or malformed files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Final

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ruvector_edge.errors import EdgeError, InvalidInputError
from ruvector_edge.neural import ActivationFunc, Network, StopFunc, TrainingAlgorithm, TrainingData

__all__ = ["app"]

EXIT_ERROR: Final = 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train and run FANN-compatible neural networks (libfann .net/.data files).",
)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(
        Text("error: ", style="bold red") + Text(message, style="red")
    )
    return typer.Exit(EXIT_ERROR)


def _parse_layers(spec: str) -> list[int]:
    try:
        layers = [int(p) for p in spec.replace(" ", "").split(",") if p]
    except ValueError:
        raise InvalidInputError(
            f"--layers must be comma-separated integers like 2,3,1, got {spec!r}"
        ) from None
    return layers


@app.command()
def train(  # noqa: PLR0917 - mirrors libfann / typer options
    data_file: Annotated[Path, typer.Argument(help="Training data in FANN .data format.")],
    layers: Annotated[
        str,
        typer.Option(help="Neurons per layer, input and output included, e.g. 2,3,1."),
    ] = "",
    algorithm: Annotated[
        str, typer.Option(help="incremental, batch, rprop, quickprop or sarprop.")
    ] = "rprop",
    max_epochs: Annotated[int, typer.Option(min=1, help="Epoch limit.")] = 1000,
    desired_error: Annotated[
        float, typer.Option(help="Stop at this MSE (or bit-fail count with --stop bit).")
    ] = 0.001,
    stop: Annotated[str, typer.Option(help="Stop function: mse or bit.")] = "mse",
    hidden: Annotated[
        str, typer.Option(help="Hidden activation (e.g. sigmoid_symmetric, relu).")
    ] = "sigmoid_symmetric",
    output: Annotated[str, typer.Option(help="Output activation.")] = "sigmoid",
    learning_rate: Annotated[float, typer.Option(help="Learning rate (libfann 0.7).")] = 0.7,
    connection_rate: Annotated[float, typer.Option(help="Sparse networks: < 1.")] = 1.0,
    cascade: Annotated[
        int, typer.Option(help="Grow up to this many neurons by cascade-correlation instead.")
    ] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for weight initialisation.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to save the trained .net file.")] = None,
    report_every: Annotated[int, typer.Option(min=1, help="Epochs between reports.")] = 10,
) -> None:
    """Train a network on a .data file and optionally save it."""
    console = Console()
    try:
        data = TrainingData.read_train_from_file(data_file)
        if cascade:
            net = Network.create_shortcut([data.num_input, data.num_output], seed=seed)
        else:
            spec = _parse_layers(layers) if layers else [data.num_input, 3, data.num_output]
            if spec[0] != data.num_input or spec[-1] != data.num_output:
                raise InvalidInputError(
                    f"--layers {spec} does not fit the data ({data.num_input} inputs, "
                    f"{data.num_output} outputs)"
                )
            net = Network.create_sparse(connection_rate, spec, seed=seed)
            net.set_activation_function_hidden(ActivationFunc.parse(hidden))
        net.set_activation_function_output(ActivationFunc.parse(output))
        net.training_algorithm = TrainingAlgorithm.parse(algorithm)
        if stop.lower() not in ("mse", "bit"):
            raise InvalidInputError(f"--stop must be mse or bit, got {stop!r}")
        net.train_stop_function = StopFunc.BIT if stop.lower() == "bit" else StopFunc.MSE
        net.learning_rate = learning_rate
    except EdgeError as exc:
        raise _fail(exc.message) from None

    total = cascade if cascade else max_epochs
    unit = "neurons" if cascade else "epochs"
    start = time.perf_counter()
    with Progress(
        TextColumn("[bold]training[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("MSE {task.fields[mse]:.6f}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(unit, total=total, mse=float("nan"))

        def report(n: Network, epoch: int, mse: float, _bits: int) -> bool:
            done = n.num_layers - 2 if cascade else epoch
            progress.update(task, completed=done, mse=mse)
            return True

        try:
            if cascade:
                epochs = net.cascadetrain_on_data(data, cascade, 1, desired_error, report)
            else:
                epochs = net.train_on_data(data, max_epochs, report_every, desired_error, report)
        except EdgeError as exc:
            raise _fail(exc.message) from None
    elapsed = time.perf_counter() - start
    mse = net.test_data(data)
    table = Table(title="training result")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("layers", ",".join(str(n) for n in net.layers))
    table.add_row("algorithm", net.training_algorithm.name.lower())
    table.add_row("epochs", str(epochs))
    table.add_row("connections", str(net.total_connections))
    table.add_row("MSE", f"{mse:.6g}")
    table.add_row("bit fail", str(net.get_bit_fail()))
    table.add_row("goal reached", "yes" if net._desired_error_reached(desired_error) else "no")
    table.add_row("seconds", f"{elapsed:.3f}")
    if out is not None:
        try:
            net.save(out)
        except EdgeError as exc:
            raise _fail(exc.message) from None
        table.add_row("saved to", str(out))
    console.print(table)


@app.command()
def run(
    net_file: Annotated[Path, typer.Argument(help="A FANN .net file.")],
    inputs: Annotated[list[float], typer.Argument(help="Input values.")],
) -> None:
    """Run a network on one input vector and print its outputs.

    Put ``--`` before negative inputs: ``nn run net.net -- -0.5 1``.
    """
    try:
        net = Network.from_file(net_file)
        outputs = net.run(np.array(inputs))
    except EdgeError as exc:
        raise _fail(exc.message) from None
    table = Table(title=f"outputs of {net_file.name}")
    table.add_column("output", justify="right")
    table.add_column("value", justify="right")
    for i, v in enumerate(outputs):
        table.add_row(str(i), f"{v:.8g}")
    Console().print(table)


@app.command()
def info(net_file: Annotated[Path, typer.Argument(help="A FANN .net file.")]) -> None:
    """Describe a network file."""
    try:
        net = Network.from_file(net_file)
    except EdgeError as exc:
        raise _fail(exc.message) from None
    table = Table(title=str(net_file))
    table.add_column("property")
    table.add_column("value", justify="right")
    table.add_row("type", net.network_type.name.lower())
    table.add_row("layers", ",".join(str(n) for n in net.layers))
    table.add_row("neurons", str(net.total_neurons))
    table.add_row("connections", str(net.total_connections))
    table.add_row("connection rate", f"{net.connection_rate:g}")
    table.add_row("training algorithm", net.training_algorithm.name.lower())
    table.add_row("scaling", "yes" if net.scale_in is not None else "no")
    Console().print(table)
