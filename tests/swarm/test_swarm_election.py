"""Leader election among coordinators: unit rules plus a simulated cluster (fake clock,
lossy, reordering, partitionable network) checking liveness and Raft's election safety."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.swarm.election import ElectionRole, LeaderElection, Outbound
from ruvector_edge.wire import (
    CoordinatorPayload,
    ElectionPayload,
    MessageType,
    SwarmMessage,
    VotePayload,
    decode_message,
    encode_message,
)

HB = 0.5
TIMEOUT = (3 * HB, 6 * HB)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def node(
    node_id: str = "a",
    peers: tuple[str, ...] = ("b", "c"),
    clock: FakeClock | None = None,
    **kwargs: object,
) -> LeaderElection:
    return LeaderElection(node_id, peers, clock=clock or FakeClock(), seed=1, **kwargs)  # type: ignore[arg-type]


def only(outs: list[Outbound]) -> Outbound:
    assert len(outs) == 1, outs
    return outs[0]


def vote_of(out: Outbound) -> VotePayload:
    assert out.message.type is MessageType.VOTE
    assert isinstance(out.message.payload, VotePayload)
    return out.message.payload


def leading(n: LeaderElection) -> bool:
    """``n.is_leader`` read through a call, so mypy does not narrow it between asserts."""
    return n.is_leader


def elect(n: LeaderElection, clock: FakeClock) -> list[Outbound]:
    """Let ``n`` time out and stand; return what it sends."""
    clock.now = n.next_deadline()
    return n.tick()


# -- unit rules ---------------------------------------------------------------------------


def test_initial_state_and_defaults() -> None:
    n = node("a", ("b", "c", "a"))
    assert n.node_id == "a"
    assert n.peers == frozenset({"b", "c"})  # itself dropped
    assert (n.term, n.voted_for, n.role, n.leader_id, n.is_leader) == (
        0,
        None,
        ElectionRole.FOLLOWER,
        None,
        False,
    )
    assert n.quorum == 2
    assert n.durable_state() == (0, None)
    # default timeout is (3*hb, 6*hb) from construction time
    assert TIMEOUT[0] <= n.next_deadline() <= TIMEOUT[1]


def test_single_node_elects_itself_after_timeout() -> None:
    clock = FakeClock()
    n = LeaderElection("solo", [], clock=clock, seed=3, url="ws://solo:1")
    clock.now = TIMEOUT[0] - 0.01
    assert n.tick() == []
    assert not leading(n)
    clock.now = TIMEOUT[1]
    out = only(n.tick())
    assert n.is_leader
    assert (n.term, n.voted_for, n.leader_id, n.leader_url) == (1, "solo", "solo", "ws://solo:1")
    assert out.recipient is None
    assert out.message.type is MessageType.COORDINATOR
    assert out.message.payload == CoordinatorPayload(
        coordinator_id="solo", term=1, url="ws://solo:1"
    )


def test_candidate_requests_votes_and_wins_with_majority() -> None:
    clock = FakeClock()
    n = node("a", ("b", "c", "d", "e"), clock)
    out = only(elect(n, clock))
    assert n.role is ElectionRole.CANDIDATE
    assert (n.term, n.voted_for) == (1, "a")
    assert out.recipient is None
    assert out.message.payload == ElectionPayload(candidate_id="a", term=1, priority=0)
    assert n.handle(SwarmMessage.vote("b", "a", 1, True)) == []
    assert n.handle(SwarmMessage.vote("c", "a", 1, False)) == []
    assert n.handle(SwarmMessage.vote("b", "a", 1, True)) == []  # duplicates count once
    assert n.role is ElectionRole.CANDIDATE
    assert n.votes == frozenset({"a", "b"})
    out = only(n.handle(SwarmMessage.vote("d", "a", 1, True)))
    assert n.is_leader
    assert out.message.type is MessageType.COORDINATOR
    assert out.recipient is None


def test_leader_heartbeats_every_interval() -> None:
    clock = FakeClock()
    n = LeaderElection("solo", [], clock=clock, seed=3)
    elect(n, clock)
    start = clock.now
    clock.now = start + HB * 0.9
    assert n.tick() == []
    beats = 0
    for i in range(1, 41):  # 4 simulated seconds in 0.1 s steps
        clock.now = start + i * 0.1
        outs = n.tick()
        beats += len(outs)
        assert all(o.message.type is MessageType.COORDINATOR for o in outs)
    assert beats == 8
    assert n.term == 1  # a leader never times out


def test_vote_granted_at_most_once_per_term() -> None:
    clock = FakeClock()
    n = node("b", ("a", "c", "d"), clock)
    assert vote_of(only(n.handle(SwarmMessage.election("a", 1)))).granted
    assert n.durable_state() == (1, "a")
    denied = vote_of(only(n.handle(SwarmMessage.election("c", 1))))
    assert (denied.granted, denied.term, denied.candidate_id) == (False, 1, "c")
    # a repeated request from the same candidate is answered the same way (idempotent)
    assert vote_of(only(n.handle(SwarmMessage.election("a", 1)))).granted
    # a new term resets the vote
    granted = vote_of(only(n.handle(SwarmMessage.election("c", 2))))
    assert granted.granted
    assert granted.term == 2
    assert n.durable_state() == (2, "c")


def test_vote_reply_is_addressed_to_candidate() -> None:
    n = node("b", ("a", "c"))
    out = only(n.handle(SwarmMessage.election("a", 1)))
    assert out.recipient == "a"
    assert out.message.recipient == "a"
    assert out.message.sender == "b"


def test_restored_durable_state_is_respected() -> None:
    n = node("b", ("a", "c", "d"), term=3, voted_for="a")
    assert n.durable_state() == (3, "a")
    assert not vote_of(only(n.handle(SwarmMessage.election("c", 3)))).granted
    assert vote_of(only(n.handle(SwarmMessage.election("a", 3)))).granted
    stale = vote_of(only(n.handle(SwarmMessage.election("c", 2))))
    assert (stale.granted, stale.term) == (False, 3)
    assert vote_of(only(n.handle(SwarmMessage.election("c", 4)))).granted
    # a restarted node's next candidacy uses a fresh term
    clock = FakeClock()
    m = node("b", ("a", "c"), clock, term=7, voted_for="b")
    elect(m, clock)
    assert m.term == 8


def test_stale_election_is_refused_with_current_term_and_candidate_catches_up() -> None:
    clock = FakeClock()
    old = node("a", ("b", "c"), clock)
    elect(old, clock)  # candidate in term 1
    current = node("b", ("a", "c"), term=5)
    reply = only(current.handle(SwarmMessage.election("a", 1)))
    assert vote_of(reply).granted is False
    assert vote_of(reply).term == 5
    assert current.durable_state() == (5, None)  # nothing changed for the refuser
    assert old.handle(reply.message) == []
    assert (old.role, old.term, old.voted_for) == (ElectionRole.FOLLOWER, 5, None)


def test_higher_term_makes_leader_follower() -> None:
    clock = FakeClock()
    n = LeaderElection("a", ["b", "c"], clock=clock, seed=2)
    elect(n, clock)
    n.handle(SwarmMessage.vote("b", "a", 1, True))
    assert n.is_leader
    # a higher-term ELECTION: follower of term 4 and (first come) votes for the candidate
    assert vote_of(only(n.handle(SwarmMessage.election("c", 4)))).granted
    assert (n.role, n.term, n.voted_for, n.leader_id) == (ElectionRole.FOLLOWER, 4, "c", None)
    # stepping down restarts its election timer rather than standing at once
    assert n.tick() == []


def test_deposed_leader_waits_a_full_timeout_before_standing() -> None:
    clock = FakeClock()
    n = LeaderElection("a", ["b", "c"], clock=clock, seed=2)
    elect(n, clock)
    n.handle(SwarmMessage.vote("b", "a", 1, True))
    clock.now += 100.0  # leaders keep no election deadline; a long reign
    n.tick()
    # told by a refused VOTE that term 5 exists (the answer to its stale heartbeat)
    assert n.handle(SwarmMessage.vote("c", "a", 5, False)) == []
    assert (n.role, n.term, n.voted_for) == (ElectionRole.FOLLOWER, 5, None)
    assert n.tick() == []  # it gives term 5's leader a chance to announce itself
    assert n.next_deadline() >= clock.now + TIMEOUT[0]


def test_coordinator_message_makes_candidate_follow() -> None:
    clock = FakeClock()
    n = node("a", ("b", "c"), clock)
    elect(n, clock)
    assert n.role is ElectionRole.CANDIDATE
    assert n.handle(SwarmMessage.coordinator("b", 1, "ws://b:9")) == []
    assert (n.role, n.term, n.leader_id, n.leader_url) == (
        ElectionRole.FOLLOWER,
        1,
        "b",
        "ws://b:9",
    )
    assert n.durable_state() == (1, "a")  # same term: its vote stays spent
    # heartbeats keep it from standing
    for _ in range(20):
        clock.now += HB
        n.handle(SwarmMessage.coordinator("b", 1, "ws://b:9"))
        assert n.tick() == []
    assert n.term == 1
    # a higher-term announcement is followed too
    n.handle(SwarmMessage.coordinator("c", 3))
    assert (n.term, n.leader_id, n.voted_for) == (3, "c", None)


def test_stale_coordinator_is_ignored_and_answered_with_current_term() -> None:
    n = node("b", ("a", "c"), term=4)
    n.handle(SwarmMessage.coordinator("c", 4))
    reply = only(n.handle(SwarmMessage.coordinator("a", 2)))
    assert n.leader_id == "c"
    assert n.term == 4
    assert reply.recipient == "a"
    assert (vote_of(reply).granted, vote_of(reply).term) == (False, 4)


def test_votes_for_other_candidates_or_old_terms_do_not_count() -> None:
    clock = FakeClock()
    n = node("a", ("b", "c", "d", "e"), clock)
    elect(n, clock)
    elect(n, clock)  # split vote: stands again in term 2
    assert n.term == 2
    n.handle(SwarmMessage.vote("b", "a", 1, True))  # old term
    bad = SwarmMessage.new("c", VotePayload(candidate_id="x", term=2, granted=True))
    n.handle(bad)  # vote for someone else
    assert n.votes == frozenset({"a"})
    assert n.role is ElectionRole.CANDIDATE


def test_ignores_unknown_senders_self_and_other_recipients() -> None:
    n = node("a", ("b", "c"))
    assert n.handle(SwarmMessage.election("stranger", 9)) == []
    assert n.handle(SwarmMessage.coordinator("a", 9)) == []
    assert n.handle(SwarmMessage.vote("b", "c", 9, True)) == []  # addressed to c
    assert n.durable_state() == (0, None)


def test_handle_rejects_other_message_types() -> None:
    n = node()
    for msg in (
        SwarmMessage.ping("b"),
        SwarmMessage.leave("b"),
        SwarmMessage.broadcast_task("b", "t1", "build"),
        SwarmMessage.data("b", "topic", 1),
    ):
        with pytest.raises(InvalidInputError, match="ELECTION, VOTE and COORDINATOR"):
            n.handle(msg)
    with pytest.raises(InvalidInputError):
        n.handle("not a message")  # type: ignore[arg-type]


def test_handle_rejects_impersonation() -> None:
    n = node()
    forged = SwarmMessage.new("b", ElectionPayload(candidate_id="c", term=5))
    with pytest.raises(InvalidInputError, match="for itself"):
        n.handle(forged)
    forged_leader = SwarmMessage.new("b", CoordinatorPayload(coordinator_id="c", term=5))
    with pytest.raises(InvalidInputError):
        n.handle(forged_leader)
    assert n.durable_state() == (0, None)


def test_messages_survive_the_wire_codec() -> None:
    clock = FakeClock()
    a = node("a", ("b", "c"), clock)
    b = node("b", ("a", "c"))
    req = only(elect(a, clock)).message
    reply = only(b.handle(decode_message(encode_message(req)))).message
    a.handle(decode_message(encode_message(reply)))
    assert a.is_leader


def test_on_leader_change_callback() -> None:
    seen: list[tuple[str | None, int]] = []
    clock = FakeClock()
    n = LeaderElection(
        "a", ["b", "c"], clock=clock, seed=1, on_leader_change=lambda *e: seen.append(e)
    )
    n.handle(SwarmMessage.coordinator("b", 1))
    n.handle(SwarmMessage.coordinator("b", 1))  # no change, no call
    n.handle(SwarmMessage.election("c", 2))  # higher term: leader unknown
    elect(n, clock)
    n.handle(SwarmMessage.vote("c", "a", 3, True))
    assert seen == [("b", 1), (None, 2), ("a", 3)]


def test_callback_errors_do_not_break_the_state_machine() -> None:
    def boom(leader: str | None, term: int) -> None:
        raise RuntimeError("bug in caller")

    n = LeaderElection("a", ["b"], clock=FakeClock(), on_leader_change=boom)
    n.handle(SwarmMessage.coordinator("b", 1))
    assert n.leader_id == "b"


def test_set_peers_shrinking_lets_candidate_win() -> None:
    clock = FakeClock()
    n = node("a", ("b", "c", "d", "e"), clock)
    elect(n, clock)
    n.handle(SwarmMessage.vote("b", "a", 1, True))
    assert not leading(n)
    n.set_peers(["b", "a"])
    assert n.peers == frozenset({"b"})
    assert n.quorum == 2
    out = only(n.tick())
    assert n.is_leader
    assert out.message.type is MessageType.COORDINATOR
    # votes from removed peers are forgotten
    m = node("a", ("b", "c"), clock)
    elect(m, clock)
    m.handle(SwarmMessage.vote("b", "a", m.term, True))  # wins with 2 of 3
    assert m.is_leader
    with pytest.raises(ConfigError):
        m.set_peers("bc")


def test_priority_is_sent_and_shortens_timeout() -> None:
    clock = FakeClock()
    low, high = 2.0, 4.0
    for seed in range(50):
        fast = LeaderElection(
            "a", ["b"], clock=clock, seed=seed, priority=10, election_timeout=(low, high)
        )
        assert low <= fast.next_deadline() <= low + (high - low) / 2
    n = LeaderElection("a", ["b"], clock=clock, seed=0, priority=7)
    out = only(elect(n, clock))
    assert isinstance(out.message.payload, ElectionPayload)
    assert out.message.payload.priority == 7


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"heartbeat_interval": float("nan")}, "heartbeat_interval"),
        ({"election_timeout": (0.4, 1.0)}, "exceed heartbeat_interval"),
        ({"election_timeout": (3.0, 2.0)}, "exceeds max"),
        ({"election_timeout": (3.0,)}, "pair"),
        ({"term": -1}, "term"),
        ({"voted_for": ""}, "voted_for"),
        ({"priority": 1.5}, "priority"),
    ],
)
def test_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LeaderElection("a", ["b"], clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


def test_bad_ids_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        LeaderElection("", ["b"])
    with pytest.raises(ConfigError):
        LeaderElection("a", ["b", ""])


# -- simulated cluster ------------------------------------------------------------------


@dataclass
class Cluster:
    """Nodes on a fake clock joined by a simulated network.

    Each step advances the clock, ticks every live node, then delivers the messages in
    flight in random order; a message can be dropped, duplicated or held back a step.
    Nodes in different partition groups cannot talk. A crash loses volatile state; a
    restart rebuilds the node from what it persisted (``durable_state`` after each call,
    before its messages leave, as the contract requires).
    """

    n: int
    seed: int = 0
    drop: float = 0.0
    dup: float = 0.0
    delay: float = 0.0
    clock: FakeClock = field(default_factory=FakeClock)
    nodes: dict[str, LeaderElection] = field(default_factory=dict)
    disk: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    group: dict[str, int] = field(default_factory=dict)
    inflight: list[tuple[str, str, SwarmMessage]] = field(default_factory=list)
    leaders_by_term: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    grants: dict[tuple[str, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    restarts: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ids = [f"n{i}" for i in range(self.n)]
        for nid in self.ids:
            self.disk[nid] = (0, None)
            self.nodes[nid] = self._make(nid)

    def _make(self, nid: str) -> LeaderElection:
        term, voted_for = self.disk[nid]
        self.restarts += 1
        return LeaderElection(
            nid,
            self.ids,
            heartbeat_interval=HB,
            term=term,
            voted_for=voted_for,
            seed=self.seed * 1000 + self.restarts,
            clock=self.clock,
            url=f"ws://{nid}",
        )

    # faults
    def crash(self, nid: str) -> None:
        self.down.add(nid)

    def restart(self, nid: str) -> None:
        if nid in self.down:
            self.down.discard(nid)
            self.nodes[nid] = self._make(nid)

    def partition(self, *groups: set[str]) -> None:
        self.group = {nid: gi for gi, members in enumerate(groups) for nid in members}

    def heal(self) -> None:
        self.group = {}

    def can_talk(self, a: str, b: str) -> bool:
        return (
            a not in self.down
            and b not in self.down
            and self.group.get(a, -1) == self.group.get(b, -1)
        )

    # running
    def _emit(self, src: str, outs: list[Outbound]) -> None:
        node = self.nodes[src]
        self.disk[src] = node.durable_state()  # persist first, then send
        if node.is_leader:
            self.leaders_by_term[node.term].add(src)
        for out in outs:
            msg = out.message
            if isinstance(msg.payload, VotePayload) and msg.payload.granted:
                self.grants[(src, msg.payload.term)].add(msg.payload.candidate_id)
            targets = [out.recipient] if out.recipient is not None else sorted(node.peers)
            for dst in targets:
                if self.rng.random() < self.drop:
                    continue
                copies = 2 if self.rng.random() < self.dup else 1
                self.inflight.extend([(src, dst, msg)] * copies)

    def step(self, dt: float = 0.05) -> None:
        self.clock.now += dt
        for nid in self.ids:
            if nid not in self.down:
                self._emit(nid, self.nodes[nid].tick())
        for _ in range(10):  # replies produced now are delivered in later rounds
            batch, self.inflight = self.inflight, []
            if not batch:
                break
            self.rng.shuffle(batch)
            for src, dst, msg in batch:
                if self.rng.random() < self.delay:
                    self.inflight.append((src, dst, msg))
                    continue
                if self.can_talk(src, dst):
                    self._emit(dst, self.nodes[dst].handle(msg))
            if self.delay:
                break  # held-back messages wait for the next step

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.05)):
            self.step()

    def run_until_leader(self, limit: float, among: set[str] | None = None) -> float:
        """Step until exactly one live node leads and all of ``among`` follow it."""
        start = self.clock.now
        group = among if among is not None else set(self.ids) - self.down
        while self.clock.now - start < limit:
            self.step()
            leaders = [n for n in group if self.nodes[n].is_leader]
            if len(leaders) == 1:
                lead = self.nodes[leaders[0]]
                if all(
                    self.nodes[n].leader_id == lead.node_id and self.nodes[n].term == lead.term
                    for n in group
                ):
                    return self.clock.now - start
        raise AssertionError(f"no agreed leader within {limit} s: {self.describe()}")

    def live_leaders(self) -> list[str]:
        return [n for n in self.ids if n not in self.down and self.nodes[n].is_leader]

    def describe(self) -> str:
        return ", ".join(repr(self.nodes[n]) for n in self.ids)

    def assert_safe(self) -> None:
        multi = {t: ls for t, ls in self.leaders_by_term.items() if len(ls) > 1}
        assert not multi, f"two leaders in one term: {multi}"
        double = {k: c for k, c in self.grants.items() if len(c) > 1}
        assert not double, f"a node voted twice in one term: {double}"


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", range(5))
def test_exactly_one_leader_emerges_and_stays(size: int, seed: int) -> None:
    c = Cluster(size, seed)
    c.run_until_leader(limit=20 * TIMEOUT[1])
    (leader,) = c.live_leaders()
    term = c.nodes[leader].term
    assert all(c.nodes[n].leader_url == f"ws://{leader}" for n in c.ids)
    c.run(30.0)  # with a healthy network heartbeats keep the same leader and term
    assert c.live_leaders() == [leader]
    assert all(c.nodes[n].term == term for n in c.ids)
    c.assert_safe()


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_leader_crash_elects_new_leader_with_higher_term(size: int, seed: int) -> None:
    c = Cluster(size, seed)
    c.run_until_leader(limit=20 * TIMEOUT[1])
    (old,) = c.live_leaders()
    old_term = c.nodes[old].term
    c.crash(old)
    took = c.run_until_leader(limit=10 * TIMEOUT[1])
    (new,) = c.live_leaders()
    assert new != old
    assert c.nodes[new].term > old_term
    assert took <= 10 * TIMEOUT[1]
    # the old leader comes back from disk and follows the new one
    c.restart(old)
    c.run(5.0)
    assert c.nodes[old].role is ElectionRole.FOLLOWER
    assert c.nodes[old].leader_id == c.live_leaders()[0]
    c.assert_safe()


@pytest.mark.parametrize("seed", range(4))
def test_partitioned_old_leader_steps_down_on_higher_term(seed: int) -> None:
    c = Cluster(5, seed)
    c.run_until_leader(limit=20 * TIMEOUT[1])
    (old,) = c.live_leaders()
    old_term = c.nodes[old].term
    rest = set(c.ids) - {old}
    c.partition({old}, rest)
    c.run_until_leader(limit=10 * TIMEOUT[1], among=rest)
    (new,) = [n for n in rest if c.nodes[n].is_leader]
    new_term = c.nodes[new].term
    assert new_term > old_term
    # the isolated old leader does not know yet: it still leads its old term
    assert c.nodes[old].is_leader
    assert c.nodes[old].term == old_term
    c.heal()
    c.run(2 * HB)
    assert not c.nodes[old].is_leader
    assert c.nodes[old].term == new_term
    assert c.nodes[old].leader_id == new
    assert c.live_leaders() == [new]  # the stale leader did not disrupt the new one
    c.assert_safe()


def test_minority_partition_cannot_elect() -> None:
    c = Cluster(5, seed=9)
    c.run_until_leader(limit=20 * TIMEOUT[1])
    (leader,) = c.live_leaders()
    minority = set([n for n in c.ids if n != leader][:2])
    c.partition(minority, set(c.ids) - minority)
    for _ in range(800):  # 40 simulated seconds
        c.step()
        assert not any(c.nodes[n].is_leader for n in minority)
    # the minority keeps standing (terms rise) but never gathers a majority,
    # while the majority side keeps its leader
    assert all(c.nodes[n].term > 1 for n in minority)
    assert c.live_leaders() == [leader]
    c.heal()
    c.run_until_leader(limit=20 * TIMEOUT[1])
    c.assert_safe()


_events = st.lists(
    st.tuples(
        st.integers(0, 399),  # step
        st.sampled_from(["crash", "restart", "partition", "heal"]),
        st.integers(0, 4),  # node index
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from([3, 5]),
    seed=st.integers(0, 2**32 - 1),
    # (drop, duplicate, delay) probabilities per message
    net=st.tuples(st.floats(0.0, 0.3), st.floats(0.0, 0.2), st.floats(0.0, 0.5)),
    events=_events,
)
def test_at_most_one_leader_per_term(
    size: int, seed: int, net: tuple[float, float, float], events: list[tuple[int, str, int]]
) -> None:
    drop, dup, delay = net
    c = Cluster(size, seed, drop=drop, dup=dup, delay=delay)
    schedule: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for step, kind, idx in events:
        schedule[step].append((kind, idx % size))
    part_rng = random.Random(seed)
    for step in range(400):  # 20 simulated seconds
        for kind, idx in schedule.get(step, []):
            nid = c.ids[idx]
            if kind == "crash":
                c.crash(nid)
            elif kind == "restart":
                c.restart(nid)
            elif kind == "partition":
                side = {n for n in c.ids if part_rng.random() < 0.5} | {nid}
                c.partition(side, set(c.ids) - side)
            else:
                c.heal()
        c.step()
        c.assert_safe()
    # and once the faults stop, the cluster recovers a single agreed leader
    for nid in c.ids:
        c.restart(nid)
    c.heal()
    c.drop = c.dup = c.delay = 0.0
    c.run_until_leader(limit=40 * TIMEOUT[1])
    c.assert_safe()
