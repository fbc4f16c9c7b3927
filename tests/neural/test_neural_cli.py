"""``ruvector-edge nn train|run|info`` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ruvector_edge.cli.main import app
from ruvector_edge.neural import Network

XOR = "4 2 1\n0 0\n0\n0 1\n1\n1 0\n1\n1 1\n0\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_train_then_run(tmp_path: Path, runner: CliRunner) -> None:
    data = tmp_path / "xor.data"
    data.write_text(XOR)
    out = tmp_path / "xor.net"
    res = runner.invoke(
        app,
        [
            "nn",
            "train",
            str(data),
            "--layers",
            "2,3,1",
            "--algorithm",
            "rprop",
            "--max-epochs",
            "300",
            "--desired-error",
            "0.001",
            "--seed",
            "0",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "goal reached" in res.output
    assert "yes" in res.output
    net = Network.from_file(out)
    assert net.layers == [2, 3, 1]
    res = runner.invoke(app, ["nn", "run", str(out), "1", "0"])
    assert res.exit_code == 0, res.output
    value = float(res.output.split("│")[-2])
    assert value == pytest.approx(net.run([1.0, 0.0])[0], abs=1e-7)
    assert value > 0.9
    res = runner.invoke(app, ["nn", "run", str(out), "--", "-1", "0.5"])
    assert res.exit_code == 0, res.output
    assert float(res.output.split("│")[-2]) == pytest.approx(net.run([-1.0, 0.5])[0], abs=1e-7)
    res = runner.invoke(app, ["nn", "info", str(out)])
    assert res.exit_code == 0
    assert "connections" in res.output


def test_cascade_flag_grows_network(tmp_path: Path, runner: CliRunner) -> None:
    data = tmp_path / "xor.data"
    data.write_text(XOR)
    out = tmp_path / "c.net"
    res = runner.invoke(
        app,
        [
            "nn",
            "train",
            str(data),
            "--cascade",
            "2",
            "--desired-error",
            "0.0",
            "--output",
            "sigmoid",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert Network.from_file(out).num_layers >= 3  # at least one neuron installed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "3,3,1"], "does not fit"),
        (["--layers", "2,x,1"], "comma-separated"),
        (["--algorithm", "adam"], "unknown training algorithm"),
        (["--hidden", "swish"], "unknown activation"),
    ],
)
def test_train_bad_flags(tmp_path: Path, runner: CliRunner, args: list[str], message: str) -> None:
    data = tmp_path / "xor.data"
    data.write_text(XOR)
    res = runner.invoke(app, ["nn", "train", str(data), *args])
    assert res.exit_code == 2
    assert message in res.output


def test_run_errors(tmp_path: Path, runner: CliRunner) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text("nonsense\n")
    res = runner.invoke(app, ["nn", "run", str(bad), "1"])
    assert res.exit_code == 2
    assert "not a FANN network" in res.output
    res = runner.invoke(app, ["nn", "run", str(tmp_path / "missing.net"), "1"])
    assert res.exit_code == 2
