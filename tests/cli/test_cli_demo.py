"""``edge-demo``: the learning workload does real work, its hidden reward behaves as
documented, and a demo run visibly learns (in-process, and over WebSocket processes)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from ruvector_edge.cli import demo_workload as wl
from ruvector_edge.cli.demo import DemoReport, agent_plan, app, render_report, run_demo
from ruvector_edge.config import AgentRole, SwarmConfig
from ruvector_edge.errors import ConfigError, InvalidInputError, TransportError
from ruvector_edge.swarm import SwarmAgent, TaskContext, TaskOutcome, task_state
from ruvector_edge.wire import TaskPayload

HIDDEN = wl.reveal()


def _params(seed: int, size: int) -> dict[str, Any]:
    return {"seed": seed, "size": size}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# ============================================================================ real work
@pytest.mark.parametrize(
    "task_type", ["resize-image", "compress-logs", "tokenize", "summarize", "parse-json"]
)
def test_approaches_produce_different_outputs_from_the_same_input(task_type: str) -> None:
    outputs = {a: wl.run_approach(task_type, a, _params(7, 60)) for a in wl.APPROACHES[task_type]}
    if task_type == "summarize":  # two extractive methods may agree on a given text
        assert len(set(outputs.values())) >= 3
    else:
        assert len(set(outputs.values())) == len(outputs)
    for approach in wl.APPROACHES[task_type]:
        other_input = wl.run_approach(task_type, approach, _params(8, 60))
        assert other_input != outputs[approach]
        # Deterministic in the parameters.
        assert wl.run_approach(task_type, approach, _params(7, 60)) == outputs[approach]


def test_compression_round_trips_and_levels_differ() -> None:
    params = _params(3, 200)
    z1 = wl.run_approach("compress-logs", "zlib-1", params)
    z9 = wl.run_approach("compress-logs", "zlib-9", params)
    logs = zlib.decompress(z1)
    assert zlib.decompress(z9) == logs
    assert logs.count(b"\n") == 200
    assert len(z9) < len(z1) < len(logs)


def test_resize_outputs_five_eighths_of_the_image() -> None:
    out = wl.run_approach("resize-image", "bilinear", _params(1, 64))
    assert out.endswith(b"(40, 40, 3)")
    assert len(out) == 40 * 40 * 3 + len(b"(40, 40, 3)")


def test_every_sql_report_approach_computes_the_same_report() -> None:
    params = _params(11, 300)
    reports = {wl.run_approach("sql-report", a, params) for a in wl.APPROACHES["sql-report"]}
    assert len(reports) == 1
    lines = reports.pop().decode().splitlines()
    assert sum(int(line.split(",")[3]) for line in lines) == 300
    assert [line.split(",")[0] for line in lines] == sorted(line.split(",")[0] for line in lines)


def test_every_json_parser_finds_the_same_summary() -> None:
    params = _params(5, 80)
    summaries = [
        json.loads(wl.run_approach("parse-json", a, params)) for a in wl.APPROACHES["parse-json"]
    ]
    assert all(s == summaries[0] for s in summaries)
    assert summaries[0]["count"] == 80
    assert len(summaries[0]["top_ids"]) == 5


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown task type"):
        wl.run_approach("mine-bitcoin", "gpu", _params(1, 10))
    with pytest.raises(InvalidInputError, match="unknown approach"):
        wl.run_approach("tokenize", "gpu", _params(1, 10))
    with pytest.raises(InvalidInputError, match="'size'"):
        wl.run_approach("tokenize", "whitespace", {"seed": 1, "size": "big"})
    with pytest.raises(InvalidInputError, match="within"):
        wl.run_approach("tokenize", "whitespace", _params(1, 10**9))


# ============================================================================ reward
def test_hidden_table_covers_every_type_with_known_names() -> None:
    assert set(HIDDEN) == set(wl.TASK_TYPES)
    for task_type, (cap, approach) in HIDDEN.items():
        assert cap in wl.CAPABILITIES
        assert approach in wl.APPROACHES[task_type]
        assert wl.APPROACHES[task_type][0] != approach  # not the tie-break winner
    assert len(set(wl.CAPABILITIES)) == 4
    assert all(len(a) == 4 for a in wl.APPROACHES.values())


@given(
    task_type=st.sampled_from(wl.TASK_TYPES),
    seed=st.integers(0, 2**32 - 1),
    caps=st.sets(st.sampled_from(wl.CAPABILITIES)),
    pick=st.integers(0, 3),
)
def test_reward_laws(task_type: str, seed: int, caps: set[str], pick: int) -> None:
    best_cap, best = HIDDEN[task_type]
    approach = wl.APPROACHES[task_type][pick]
    value = wl.reward(task_type, approach, caps, seed)
    assert value == wl.reward(task_type, approach, caps, seed)  # deterministic
    success = value >= wl.SUCCESS_THRESHOLD
    # Success exactly when the best approach runs on an agent with the best capability.
    assert success == (approach == best and best_cap in caps)
    expected = 0.55 * (approach == best) + 0.35 * (best_cap in caps)
    assert abs(value - expected) <= 0.04 + 1e-9


def _agent(caps: tuple[str, ...], exploration: float = 0.0) -> SwarmAgent:
    config = SwarmConfig(agent_id="t-agent", agent_role=AgentRole.WORKER)
    return SwarmAgent(
        config,
        capabilities=caps,
        handlers=wl.HANDLERS,
        exploration=exploration,
        seed=1,
    )


async def _run(agent: SwarmAgent, task_type: str, params: dict[str, Any]) -> TaskOutcome:
    task = TaskPayload(task_id="t1", task_type=task_type, parameters=params)
    outcome = await wl.HANDLERS[task_type](TaskContext(agent, task))
    assert isinstance(outcome, TaskOutcome)
    return outcome


@pytest.mark.parametrize("task_type", wl.TASK_TYPES)
async def test_handler_runs_the_chosen_approach_and_reports_its_reward(task_type: str) -> None:
    best_cap, best = HIDDEN[task_type]
    params = _params(42, 50)
    good = _agent((best_cap,))
    # What the swarm learned steers the choice (no exploration): the best approach.
    good.learn(task_state(task_type), best, 0.9)
    outcome = await _run(good, task_type, params)
    assert outcome.action == best
    assert outcome.success
    assert outcome.reward == wl.reward(task_type, best, (best_cap,), 42)
    assert outcome.result == {
        "approach": best,
        "digest": _digest(wl.run_approach(task_type, best, params)),
        "bytes": len(wl.run_approach(task_type, best, params)),
        "agent": "t-agent",
    }
    # Same approach on an agent without the capability: real work, but no success.
    other_cap = next(c for c in wl.CAPABILITIES if c != best_cap)
    weak = _agent((other_cap,))
    weak.learn(task_state(task_type), best, 0.9)
    weak_outcome = await _run(weak, task_type, params)
    assert weak_outcome.action == best
    assert not weak_outcome.success
    assert weak_outcome.error is not None


async def test_handler_explores_when_nothing_is_known() -> None:
    agent = _agent(("python",))
    seen = set()
    for i in range(40):
        outcome = await _run(agent, "tokenize", _params(i, 30))
        seen.add(outcome.action)
    assert seen == set(wl.APPROACHES["tokenize"])


# ============================================================================ tasks and plan
def test_make_tasks_is_deterministic_and_balanced() -> None:
    tasks = wl.make_tasks(120, seed=3)
    assert tasks == wl.make_tasks(120, seed=3)
    assert tasks != wl.make_tasks(120, seed=4)
    assert len(tasks) == 120
    for start in range(0, 120, 6):
        assert {t for t, _ in tasks[start : start + 6]} == set(wl.TASK_TYPES)
    for task_type, params in tasks:
        wl.run_approach(task_type, wl.APPROACHES[task_type][0], params)  # valid parameters
    assert wl.make_tasks(0) == []
    assert len(wl.make_tasks(7, 1)) == 7
    with pytest.raises(InvalidInputError):
        wl.make_tasks(-1)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8])
def test_agent_plan_has_one_scout_and_every_capability(n: int) -> None:
    plan = agent_plan(n)
    assert [agent_id for agent_id, _, _ in plan] == [f"agent-{i}" for i in range(n)]
    assert [role for _, role, _ in plan] == [AgentRole.SCOUT] + [AgentRole.WORKER] * (n - 1)
    assert set().union(*(caps for _, _, caps in plan)) == set(wl.CAPABILITIES)
    assert all(caps for _, _, caps in plan)
    with pytest.raises(ConfigError):
        agent_plan(0)


# ============================================================================ demo runs
def _check_learned(report: DemoReport, tasks: int) -> None:
    assert len(report.rows) == tasks
    assert [r.index for r in report.rows] == list(range(tasks))
    assert report.last_success > report.first_success
    assert report.last_success - report.first_success >= 0.25
    assert report.paid_off
    stats = report.stats
    assert stats.patterns > 0
    assert stats.pattern_origins >= report.agents  # every agent contributed patterns
    assert stats.pattern_syncs > 0
    assert stats.memories > 0  # the scout files what it saw
    assert report.latency["sync_samples"]
    assert report.latency["propagation_samples"]
    assert report.converged
    assert all(r.agent in {a for a, _, _ in report.plan} for r in report.rows)


async def test_inprocess_demo_learns() -> None:
    # A loaded CI machine may need longer than the demo's default to spread the last
    # patterns; waiting ends as soon as they have arrived.
    report = await run_demo(agents=3, transport="inproc", tasks=150, seed=1, converge_timeout=30)
    _check_learned(report, 150)
    console = Console(file=io.StringIO(), width=120, record=True)
    render_report(console, report)
    text = console.export_text()
    assert "learning paid off" in text
    assert "synthetic hidden table" in text
    assert "first tenth (15)" in text


async def test_demo_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError, match="at least 10"):
        await run_demo(transport="inproc", tasks=5)
    with pytest.raises(ConfigError, match="unknown transport"):
        await run_demo(transport="carrier-pigeon")
    with pytest.raises(ConfigError, match="--agents"):
        await run_demo(transport="inproc", agents=0)


async def test_agent_processes_that_fail_give_a_clear_error() -> None:
    with pytest.raises(TransportError) as info:
        await run_demo(
            agents=1,
            transport="ws",
            tasks=10,
            agent_module="ruvector_edge.cli.no_such_agent_module",
            join_timeout=30.0,
        )
    assert info.value.code == "agents_not_ready"
    assert "exited" in info.value.message
    assert "no_such_agent_module" in info.value.message  # the child's stderr tail


def test_cli_help_lists_the_flags() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for flag in ("--agents", "--transport", "--tasks", "--seed", "--sync-interval", "--showcase"):
        assert flag in result.output


def test_cli_showcase_still_runs() -> None:
    result = CliRunner().invoke(app, ["--showcase", "--agents", "2", "--size", "1000"])
    assert result.exit_code == 0, result.output
    assert "AuthError" in result.output
    assert "frames in" in result.output


def test_cli_reports_bad_settings_with_exit_code_2() -> None:
    result = CliRunner().invoke(app, ["--transport", "carrier-pigeon"])
    assert result.exit_code == 2
    assert "unknown transport" in result.output
    result = CliRunner().invoke(app, ["--transport", "inproc", "--allocator", "coin-flip"])
    assert result.exit_code == 2
    assert "unknown allocator" in result.output


def test_cli_inprocess_run_exits_0_when_learning_paid_off() -> None:
    result = CliRunner().invoke(
        app, ["--transport", "inproc", "--agents", "3", "--tasks", "120", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "in this process" in result.output
    assert "learning paid off" in result.output


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("ruvector_edge.cli.agent") is None,
    reason="needs the edge-agent CLI (ruvector_edge.cli.agent) to start agent processes",
)
async def test_websocket_demo_with_agent_processes_learns() -> None:
    report = await run_demo(agents=2, transport="ws", tasks=120, seed=0, converge_timeout=30)
    assert report.url.startswith("ws://127.0.0.1:")
    _check_learned(report, 120)
