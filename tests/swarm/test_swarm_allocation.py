"""Task allocation: role eligibility, the simple strategies and the learned allocator."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from ruvector_edge.config import AgentRole
from ruvector_edge.errors import ConfigError, EdgeError, InvalidInputError
from ruvector_edge.learning import IntelligenceSync
from ruvector_edge.swarm.allocation import (
    ALLOCATORS,
    AllocationStrategy,
    Candidate,
    CapabilityMatch,
    Learned,
    LeastLoaded,
    RoundRobin,
    alloc_state,
    candidate_actions,
    create_allocator,
    eligible,
    eligible_candidates,
)
from ruvector_edge.wire import TaskPayload


def task(
    task_type: str = "build", required: list[str] | None = None, tid: str = "t1"
) -> TaskPayload:
    return TaskPayload(task_id=tid, task_type=task_type, required_capabilities=required or [])


def cand(
    agent_id: str,
    role: AgentRole = AgentRole.WORKER,
    caps: set[str] | None = None,
    load: float = 0.0,
) -> Candidate:
    return Candidate(agent_id, role, frozenset(caps or set()), load)


# -- eligibility ----------------------------------------------------------------------

W, S, SP, C = AgentRole.WORKER, AgentRole.SCOUT, AgentRole.SPECIALIST, AgentRole.COORDINATOR


@pytest.mark.parametrize(
    ("role", "caps", "task_type", "required", "expected"),
    [
        # coordinators never run tasks, whatever they can do
        (C, set(), "build", [], False),
        (C, {"build", "rust"}, "build", ["rust"], False),
        # workers and scouts: required ⊆ capabilities
        (W, set(), "build", [], True),
        (W, {"rust"}, "build", ["rust"], True),
        (W, {"rust", "gpu"}, "build", ["rust"], True),
        (W, {"python"}, "build", ["rust"], False),
        (W, {"rust"}, "build", ["rust", "gpu"], False),
        (S, set(), "explore", [], True),
        (S, {"web"}, "explore", ["web"], True),
        (S, set(), "explore", ["web"], False),
        # specialists: only tasks that match their specialty
        (SP, {"rust"}, "build", [], False),
        (SP, {"build"}, "build", [], True),
        (SP, {"rust"}, "build", ["rust"], True),
        (SP, {"rust", "gpu"}, "anything", ["rust", "gpu"], True),
        (SP, {"rust"}, "build", ["rust", "gpu"], False),
        (SP, {"build"}, "build", ["gpu"], False),
        (SP, set(), "build", [], False),
    ],
)
def test_eligibility_table(
    role: AgentRole, caps: set[str], task_type: str, required: list[str], expected: bool
) -> None:
    assert eligible(task(task_type, required), cand("a", role, caps)) is expected


def test_eligible_candidates_filters_in_order() -> None:
    cands = [
        cand("c", C),
        cand("w1", W, {"rust"}),
        cand("sp", SP, {"python"}),
        cand("w2", W),
        cand("s", S, {"rust"}),
    ]
    got = eligible_candidates(task("build", ["rust"]), cands)
    assert [c.agent_id for c in got] == ["w1", "s"]


def test_candidate_validation_and_normalisation() -> None:
    c = Candidate("a", "worker", {"x", "y"}, 2)  # type: ignore[arg-type]
    assert c.role is AgentRole.WORKER
    assert c.capabilities == frozenset({"x", "y"})
    assert c.load == 2.0
    with pytest.raises(InvalidInputError):
        Candidate("a", W, frozenset(), -1.0)
    with pytest.raises(InvalidInputError):
        Candidate("a", W, frozenset(), float("nan"))
    with pytest.raises(InvalidInputError):
        Candidate("", W)
    with pytest.raises(InvalidInputError):
        Candidate("a", W, "rust")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Candidate("a", "boss")  # type: ignore[arg-type]


# -- simple strategies ------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [RoundRobin(), LeastLoaded(), CapabilityMatch()])
def test_empty_candidates_give_none(strategy: AllocationStrategy) -> None:
    assert strategy.choose(task(), []) is None


def test_round_robin_is_fair_over_many_calls() -> None:
    rr = RoundRobin()
    cands = [cand(f"a{i}") for i in (3, 1, 4, 0, 2)]  # unsorted on purpose
    picks = [rr.choose(task(), cands) for _ in range(500)]
    ids = [p.agent_id for p in picks if p is not None]
    assert Counter(ids) == {f"a{i}": 100 for i in range(5)}
    # sorted-id cycle, not input order
    assert ids[:6] == ["a0", "a1", "a2", "a3", "a4", "a0"]


def test_round_robin_is_stable_when_candidates_change() -> None:
    rr = RoundRobin()
    abc = [cand("a"), cand("b"), cand("c")]
    assert [rr.choose(task(), abc).agent_id for _ in range(2)] == ["a", "b"]  # type: ignore[union-attr]
    # "b" leaves: the rotation continues after "b", it does not restart at "a"
    assert rr.choose(task(), [cand("a"), cand("c")]).agent_id == "c"  # type: ignore[union-attr]
    # "bb" joins between "b" and "c": it gets its turn in id order after wrapping
    cands = [cand("a"), cand("bb"), cand("c")]
    got = [rr.choose(task(), cands).agent_id for _ in range(4)]  # type: ignore[union-attr]
    assert got == ["a", "bb", "c", "a"]
    # the last chosen agent may leave too
    assert rr.choose(task(), [cand("b"), cand("c")]).agent_id == "b"  # type: ignore[union-attr]


def test_least_loaded_picks_min_load() -> None:
    ll = LeastLoaded()
    cands = [cand("a", load=3), cand("b", load=1), cand("c", load=2)]
    for _ in range(5):
        assert ll.choose(task(), cands).agent_id == "b"  # type: ignore[union-attr]


def test_least_loaded_rotates_ties() -> None:
    ll = LeastLoaded()
    cands = [cand("a", load=1), cand("b", load=5), cand("c", load=1), cand("d", load=1)]
    ids = [ll.choose(task(), cands).agent_id for _ in range(9)]  # type: ignore[union-attr]
    assert Counter(ids) == {"a": 3, "c": 3, "d": 3}


def test_least_loaded_balances_when_loads_are_updated() -> None:
    ll = LeastLoaded()
    loads = {"a": 0.0, "b": 0.0, "c": 0.0}
    for _ in range(30):
        chosen = ll.choose(task(), [cand(k, load=v) for k, v in loads.items()])
        assert chosen is not None
        loads[chosen.agent_id] += 1
    assert loads == {"a": 10.0, "b": 10.0, "c": 10.0}


def test_capability_match_prefers_best_cover() -> None:
    cm = CapabilityMatch()
    t = task("build", ["rust", "gpu"])
    cands = [
        cand("generalist", caps={"rust", "gpu", "python"}),
        cand("exact", caps={"rust", "gpu", "build"}),
        cand("partial", caps={"rust"}),
    ]
    for _ in range(4):
        assert cm.choose(t, cands).agent_id == "exact"  # type: ignore[union-attr]


def test_capability_match_ties_by_load_then_rotation() -> None:
    cm = CapabilityMatch()
    t = task("build", ["rust"])
    busy = [cand("a", caps={"rust"}, load=2), cand("b", caps={"rust"}, load=1)]
    assert cm.choose(t, busy).agent_id == "b"  # type: ignore[union-attr]
    tied = [cand("a", caps={"rust"}), cand("b", caps={"rust"}), cand("z")]
    ids = [cm.choose(t, tied).agent_id for _ in range(4)]  # type: ignore[union-attr]
    assert sorted(ids) == ["a", "a", "b", "b"]


# -- learned ----------------------------------------------------------------------------


def test_candidate_actions_and_state() -> None:
    c = cand("a", SP, {"zeta", "alpha"})
    assert candidate_actions(c) == ["role:specialist", "cap:alpha", "cap:zeta"]
    assert alloc_state("edit_ts") == "alloc:edit_ts"


def test_learned_optimism_tries_every_profile_once() -> None:
    sync = IntelligenceSync("coord")
    lr = Learned(sync, epsilon=0.0, seed=1)
    cands = [cand(f"w{i}", caps={f"c{i}"}) for i in range(5)]
    t = task("T")
    assert set(lr.predictions(t, cands).values()) == {1.0}
    first = []
    for _ in range(5):
        chosen = lr.choose(t, cands)
        assert chosen is not None
        first.append(chosen.agent_id)
        lr.observe(t, chosen, 0.5, True)
    assert sorted(first) == [f"w{i}" for i in range(5)]
    # everything tried once at reward 0.5 < optimism: no more optimistic predictions
    assert set(lr.predictions(t, cands).values()) == {0.5}


def test_learned_observe_writes_every_profile_action() -> None:
    sync = IntelligenceSync("coord")
    lr = Learned(sync, epsilon=0.0)
    c = cand("a", SP, {"x", "y"})
    lr.observe(task("T"), c, 0.8, True)
    lr.observe(task("T"), c, 0.4, False)
    for action in ("role:specialist", "cap:x", "cap:y"):
        stats = sync.get_pattern("alloc:T", action)
        assert stats is not None
        assert stats.visits == 2
        assert stats.value == pytest.approx(0.6)
    assert sync.get_pattern("alloc:other", "cap:x") is None


def test_learned_prediction_is_max_over_actions_and_uses_merged_peer_data() -> None:
    sync = IntelligenceSync("coord")
    sync.update_pattern("alloc:T", "role:worker", 0.3)
    sync.update_pattern("alloc:T", "cap:good", 0.9)
    sync.update_pattern("alloc:T", "cap:bad", 0.1)
    lr = Learned(sync, epsilon=0.0, optimism=0.0)
    t = task("T")
    cands = [cand("g", caps={"good"}), cand("b", caps={"bad"}), cand("n", caps={"new"})]
    preds = lr.predictions(t, cands)
    assert preds == pytest.approx({"g": 0.9, "b": 0.3, "n": 0.3})
    assert lr.choose(t, cands).agent_id == "g"  # type: ignore[union-attr]
    # knowledge learned by another coordinator merges in and changes the choice
    peer = IntelligenceSync("coord-2")
    for _ in range(50):
        peer.update_pattern("alloc:T", "cap:new", 1.0)
    sync.merge_peer_state("coord-2", peer.serialize_state())
    assert lr.choose(t, cands).agent_id == "n"  # type: ignore[union-attr]


def test_learned_ties_break_by_load() -> None:
    lr = Learned(IntelligenceSync("coord"), epsilon=0.0)
    cands = [cand("a", load=2), cand("b", load=0), cand("c", load=1)]
    assert lr.choose(task(), cands).agent_id == "b"  # type: ignore[union-attr]


def test_learned_epsilon_one_is_uniform_random() -> None:
    lr = Learned(IntelligenceSync("coord"), epsilon=1.0, seed=7)
    cands = [cand(f"w{i}", load=i) for i in range(4)]
    ids = Counter(lr.choose(task(), cands).agent_id for _ in range(2000))  # type: ignore[union-attr]
    assert set(ids) == {"w0", "w1", "w2", "w3"}
    assert all(400 < n < 600 for n in ids.values())


def _run_workload(
    lr: Learned, cands: list[Candidate], best: str, rounds: int, seed: int
) -> list[str]:
    """Allocate ``rounds`` tasks of type T; return the capability of each choice."""
    noise = random.Random(seed)
    out: list[str] = []
    for i in range(rounds):
        t = task("T", tid=f"t{i}")
        chosen = lr.choose(t, cands)
        assert chosen is not None
        (cap,) = chosen.capabilities
        out.append(cap)
        reward = (1.0 if cap == best else 0.2) + noise.gauss(0.0, 0.1)
        lr.observe(t, chosen, reward, reward > 0.5)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learned_converges_to_hidden_best_capability(seed: int) -> None:
    caps = ["c0", "c1", "c2", "c3"]
    best = caps[seed % len(caps)]
    cands = [cand(f"w{i}", caps={c}) for i, c in enumerate(caps)]

    # Before learning, choices are at chance level: nothing tells the profiles apart.
    blind = Learned(IntelligenceSync("coord"), epsilon=0.1, seed=seed)
    before = [blind.choose(task("T"), cands) for _ in range(400)]
    share = sum(1 for c in before if c is not None and best in c.capabilities) / len(before)
    assert abs(share - 1 / len(caps)) < 0.08

    lr = Learned(IntelligenceSync("coord"), epsilon=0.1, seed=seed)
    choices = _run_workload(lr, cands, best, rounds=600, seed=seed + 100)
    last = choices[-200:]
    assert sum(c == best for c in last) / len(last) >= 0.85
    preds = lr.predictions(task("T"), cands)
    assert max(preds, key=lambda k: preds[k]) == f"w{caps.index(best)}"


def test_learned_random_allocation_baseline_does_not_converge() -> None:
    # Control for the convergence test: without learning (epsilon=1) the share stays low.
    caps = ["c0", "c1", "c2", "c3"]
    cands = [cand(f"w{i}", caps={c}) for i, c in enumerate(caps)]
    lr = Learned(IntelligenceSync("coord"), epsilon=1.0, seed=3)
    choices = _run_workload(lr, cands, "c2", rounds=600, seed=5)
    assert sum(c == "c2" for c in choices[-200:]) / 200 < 0.4


def test_learned_is_deterministic_with_seed() -> None:
    cands = [cand(f"w{i}", caps={f"c{i}"}) for i in range(3)]
    runs = [
        _run_workload(Learned(IntelligenceSync("coord"), seed=11), cands, "c1", 100, 4)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


# -- factory ----------------------------------------------------------------------------


def test_create_allocator_names() -> None:
    assert ALLOCATORS == ("round-robin", "least-loaded", "capability", "learned")
    assert isinstance(create_allocator("round-robin"), RoundRobin)
    assert isinstance(create_allocator("Least_Loaded"), LeastLoaded)
    assert isinstance(create_allocator(" capability "), CapabilityMatch)
    sync = IntelligenceSync("coord")
    lr = create_allocator("learned", sync=sync, epsilon=0.25, seed=3)
    assert isinstance(lr, Learned)
    assert lr.epsilon == 0.25
    assert lr.sync is sync
    # sync is harmless for strategies that do not learn
    assert isinstance(create_allocator("round-robin", sync=sync), RoundRobin)
    for name in ALLOCATORS:
        made = create_allocator(name, sync=sync)
        assert made.name == name


def test_create_allocator_errors() -> None:
    with pytest.raises(ConfigError, match=r"round-robin, least-loaded, capability, learned"):
        create_allocator("random")
    with pytest.raises(ConfigError, match="sync"):
        create_allocator("learned")
    with pytest.raises(ConfigError, match="epsilon"):
        create_allocator("learned", sync=IntelligenceSync("c"), epsilon=1.5)
    with pytest.raises(ConfigError, match="epsilon"):
        create_allocator("learned", sync=IntelligenceSync("c"), epsilon=-0.1)
    with pytest.raises(ConfigError, match="temperature"):
        create_allocator("learned", sync=IntelligenceSync("c"), temperature=1.0)
    with pytest.raises(ConfigError, match="no options"):
        create_allocator("least-loaded", epsilon=0.1)
    with pytest.raises(ConfigError, match="IntelligenceSync"):
        Learned(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="optimism"):
        Learned(IntelligenceSync("c"), optimism=float("inf"))
    # every error is an EdgeError, as the project's contract requires
    with pytest.raises(EdgeError):
        create_allocator("nope")
