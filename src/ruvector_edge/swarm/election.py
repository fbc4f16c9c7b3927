"""Leader election among coordinators: Raft's election (§5.2) without a log, sans-I/O.

Several coordinators serve one swarm; one of them leads. The replicated state is a CRDT,
so any coordinator may lead and there is no log to compare: this is exactly Raft's
leader election with terms.

- Each node waits a randomized election timeout (seeded RNG). A follower or candidate
  that hears no valid COORDINATOR for that long becomes a candidate: ``term += 1``, votes
  for itself and sends ELECTION (RequestVote) to every peer.
- A node grants at most one vote per term (first come), only for a term >= its own,
  and answers with a VOTE. A stale ELECTION (lower term) gets ``granted=False`` with the
  current term, so the candidate catches up.
- Any message with a higher term makes the node a follower in that term (vote reset).
- A candidate voted for by a majority of the cluster (peers + itself) becomes leader,
  sends COORDINATOR at once and then every ``heartbeat_interval``.
- A COORDINATOR with term >= own term makes the node a follower of that leader (a
  candidate steps down). A stale COORDINATOR is answered with a refused VOTE carrying the
  current term, so a deposed leader learns it is stale (Raft's AppendEntries reply).

``priority`` is information only (it travels in ELECTION) plus a small bias: a node with
a higher positive priority draws its timeout from a narrower range starting at the lower
bound, so it tends to stand first. It never affects who may be voted for, so it cannot
break safety.

Durability: ``(term, voted_for)`` must survive a restart, or a node could vote twice in
one term. The caller persists :meth:`LeaderElection.durable_state` after every
``tick``/``handle`` call and before sending that call's outbound messages, and passes it
back to the constructor on restart.

Nothing here does I/O: ``tick`` and ``handle`` return the messages to send as
:class:`Outbound` values and the clock is injected.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from ruvector_edge.errors import ConfigError, InvalidInputError
from ruvector_edge.wire import (
    CoordinatorPayload,
    ElectionPayload,
    MessageType,
    SwarmMessage,
    VotePayload,
)

__all__ = ["ElectionRole", "LeaderChangeCallback", "LeaderElection", "Outbound"]

logger = logging.getLogger("ruvector_edge.swarm")

LeaderChangeCallback = Callable[[str | None, int], None]
"""``callback(leader_id | None, term)``: called when the known leader changes."""

_ELECTION_TYPES = frozenset({MessageType.ELECTION, MessageType.VOTE, MessageType.COORDINATOR})
_MAX_PRIORITY_BIAS = 10  # priorities above this give no further advantage


class ElectionRole(StrEnum):
    """A node's role in the current term."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to send: to ``recipient``, or to every peer coordinator when None."""

    recipient: str | None
    message: SwarmMessage


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise ConfigError(f"{what} must be 1-128 characters, got {value!r:.80}")
    return value


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number of seconds, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{what} must be > 0 seconds, got {value!r}")
    return float(value)


class LeaderElection:
    """One coordinator's election state machine (see the module docstring for the rules).

    Call :meth:`tick` often (at least a few times per heartbeat interval) and feed every
    ELECTION, VOTE and COORDINATOR from a peer coordinator to :meth:`handle`; send what
    they return. Not thread-safe: drive it from one task or thread.
    """

    def __init__(
        self,
        node_id: str,
        peers: Iterable[str],
        *,
        url: str | None = None,
        heartbeat_interval: float = 0.5,
        election_timeout: tuple[float, float] | None = None,
        term: int = 0,
        voted_for: str | None = None,
        priority: int = 0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_leader_change: LeaderChangeCallback | None = None,
    ) -> None:
        self._node_id = _check_id(node_id, "node_id")
        self._heartbeat = _positive(heartbeat_interval, "heartbeat_interval")
        if election_timeout is None:
            low, high = 3 * self._heartbeat, 6 * self._heartbeat
        else:
            try:
                raw_low, raw_high = election_timeout
            except (TypeError, ValueError):
                raise ConfigError(
                    f"election_timeout must be a (min, max) pair of seconds, "
                    f"got {election_timeout!r}"
                ) from None
            low = _positive(raw_low, "election_timeout min")
            high = _positive(raw_high, "election_timeout max")
            if low > high:
                raise ConfigError(f"election_timeout min {low} exceeds max {high}")
        if low <= self._heartbeat:
            raise ConfigError(
                f"election timeout min ({low} s) must exceed heartbeat_interval "
                f"({self._heartbeat} s), or followers time out between heartbeats; "
                "use at least 2-3 heartbeat intervals"
            )
        self._timeout = (low, high)
        if isinstance(term, bool) or not isinstance(term, int) or term < 0:
            raise ConfigError(f"term must be an integer >= 0, got {term!r}")
        if voted_for is not None:
            _check_id(voted_for, "voted_for")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigError(f"priority must be an integer, got {priority!r}")
        if url is not None and not isinstance(url, str):
            raise ConfigError(f"url must be a str or None, got {url!r:.80}")
        self._url = url
        self._priority = priority
        self._rng = random.Random(seed)
        self._clock = clock
        self.on_leader_change: LeaderChangeCallback | None = on_leader_change

        self._peers: frozenset[str] = frozenset()
        self._votes: set[str] = set()
        self.set_peers(peers)
        self._term = term
        self._voted_for = voted_for
        self._role = ElectionRole.FOLLOWER
        self._leader_id: str | None = None
        self._leader_url: str | None = None
        self._announced: tuple[str | None, int] = (None, term)
        self._next_heartbeat = 0.0
        self._deadline = 0.0
        self._reset_deadline(self._clock())

    # -- read-only state ------------------------------------------------------------

    @property
    def node_id(self) -> str:
        """This coordinator's id."""
        return self._node_id

    @property
    def peers(self) -> frozenset[str]:
        """The other coordinators of the cluster (never includes ``node_id``)."""
        return self._peers

    @property
    def term(self) -> int:
        """The current term."""
        return self._term

    @property
    def voted_for(self) -> str | None:
        """Whom this node voted for in the current term, if anyone."""
        return self._voted_for

    @property
    def role(self) -> ElectionRole:
        """Follower, candidate or leader."""
        return self._role

    @property
    def leader_id(self) -> str | None:
        """The leader of the current term as far as this node knows."""
        return self._leader_id

    @property
    def leader_url(self) -> str | None:
        """The known leader's announced URL (this node's ``url`` when it leads)."""
        return self._leader_url

    @property
    def is_leader(self) -> bool:
        """Whether this node leads the current term."""
        return self._role is ElectionRole.LEADER

    @property
    def priority(self) -> int:
        """This node's election priority (informational; slight timeout bias)."""
        return self._priority

    @property
    def votes(self) -> frozenset[str]:
        """Votes received in the current candidacy (including its own)."""
        return frozenset(self._votes)

    @property
    def quorum(self) -> int:
        """Votes needed to win: a majority of peers plus this node."""
        return (len(self._peers) + 1) // 2 + 1

    def durable_state(self) -> tuple[int, str | None]:
        """``(term, voted_for)``: persist before sending a call's outbound messages."""
        return self._term, self._voted_for

    def next_deadline(self) -> float:
        """Clock time by which :meth:`tick` should next be called."""
        return self._next_heartbeat if self.is_leader else self._deadline

    def __repr__(self) -> str:
        return (
            f"LeaderElection({self._node_id!r}, role={self._role.value}, term={self._term}, "
            f"leader={self._leader_id!r})"
        )

    # -- configuration --------------------------------------------------------------

    def set_peers(self, peers: Iterable[str]) -> None:
        """Replace the set of peer coordinators (``node_id`` itself is dropped).

        Votes from removed peers no longer count; a candidate that now has a majority
        becomes leader at the next :meth:`tick`.
        """
        if isinstance(peers, str):
            raise ConfigError("peers must be a collection of coordinator ids, not one str")
        ids = frozenset(_check_id(p, "peer id") for p in peers)
        self._peers = ids - {self._node_id}
        self._votes &= self._peers | {self._node_id}

    # -- driving --------------------------------------------------------------------

    def tick(self) -> list[Outbound]:
        """Advance time: start an election on timeout; as leader, send due heartbeats."""
        now = self._clock()
        if self._role is ElectionRole.LEADER:
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + self._heartbeat
                return [self._announce()]
            return []
        if self._role is ElectionRole.CANDIDATE and len(self._votes) >= self.quorum:
            return self._become_leader(now)
        if now >= self._deadline:
            return self._start_election(now)
        return []

    def handle(self, msg: SwarmMessage) -> list[Outbound]:
        """Process an ELECTION, VOTE or COORDINATOR from a peer coordinator.

        Messages from unknown senders (not in ``peers``), from this node itself, or
        addressed to another node are ignored. Raises InvalidInputError for other message
        types or a payload whose id disagrees with the sender.
        """
        if not isinstance(msg, SwarmMessage):
            raise InvalidInputError(f"expected a SwarmMessage, got {type(msg).__name__}")
        if msg.type not in _ELECTION_TYPES:
            raise InvalidInputError(
                f"the election handles ELECTION, VOTE and COORDINATOR messages, "
                f"not {msg.type.value!r}; route it elsewhere"
            )
        payload = msg.payload
        if isinstance(payload, ElectionPayload):
            self._check_sender(msg, payload.candidate_id, "candidate_id")
        elif isinstance(payload, CoordinatorPayload):
            self._check_sender(msg, payload.coordinator_id, "coordinator_id")
        if msg.sender == self._node_id or msg.sender not in self._peers:
            logger.debug("election %s: ignoring %s from %r", self._node_id, msg.type, msg.sender)
            return []
        if msg.recipient is not None and msg.recipient != self._node_id:
            return []
        now = self._clock()
        if isinstance(payload, ElectionPayload):
            return self._on_election(payload, now)
        if isinstance(payload, VotePayload):
            return self._on_vote(msg.sender, payload, now)
        if isinstance(payload, CoordinatorPayload):
            return self._on_coordinator(payload, now)
        raise InvalidInputError(f"{msg.type.value} message carries no election payload")

    # -- message handlers -----------------------------------------------------------

    @staticmethod
    def _check_sender(msg: SwarmMessage, claimed: str, field: str) -> None:
        if claimed != msg.sender:
            raise InvalidInputError(
                f"{msg.type.value} from {msg.sender!r} names {field} {claimed!r}; "
                "a coordinator may only stand or announce for itself"
            )

    def _on_election(self, p: ElectionPayload, now: float) -> list[Outbound]:
        if p.term < self._term:
            return [self._vote(p.candidate_id, granted=False)]
        if p.term > self._term:
            self._step_down(p.term, now)
        granted = self._voted_for in (None, p.candidate_id)
        if granted:
            self._voted_for = p.candidate_id
            self._reset_deadline(now)  # a vote given = an election in progress; wait
        return [self._vote(p.candidate_id, granted=granted)]

    def _on_vote(self, voter: str, p: VotePayload, now: float) -> list[Outbound]:
        if p.term > self._term:
            self._step_down(p.term, now)
            return []
        if (
            p.term < self._term
            or not p.granted
            or p.candidate_id != self._node_id
            or self._role is not ElectionRole.CANDIDATE
        ):
            return []
        self._votes.add(voter)
        if len(self._votes) >= self.quorum:
            return self._become_leader(now)
        return []

    def _on_coordinator(self, p: CoordinatorPayload, now: float) -> list[Outbound]:
        if p.term < self._term:
            return [self._vote(p.coordinator_id, granted=False)]
        if p.term > self._term:
            self._step_down(p.term, now)
        elif self._role is ElectionRole.LEADER:
            # Two leaders in one term cannot arise from these rules; it means lost
            # durable state somewhere. Yield, and let a fresh election sort it out.
            logger.warning(
                "election %s: %r also claims term %d; stepping down",
                self._node_id,
                p.coordinator_id,
                p.term,
            )
        self._role = ElectionRole.FOLLOWER
        self._votes.clear()
        self._leader_id = p.coordinator_id
        self._leader_url = p.url
        self._reset_deadline(now)
        self._notify()
        return []

    # -- transitions ----------------------------------------------------------------

    def _start_election(self, now: float) -> list[Outbound]:
        self._term += 1
        self._role = ElectionRole.CANDIDATE
        self._voted_for = self._node_id
        self._votes = {self._node_id}
        self._leader_id = None
        self._leader_url = None
        self._reset_deadline(now)
        self._notify()
        logger.debug("election %s: standing in term %d", self._node_id, self._term)
        if len(self._votes) >= self.quorum:
            return self._become_leader(now)
        msg = SwarmMessage.election(self._node_id, self._term, self._priority)
        return [Outbound(None, msg)]

    def _become_leader(self, now: float) -> list[Outbound]:
        self._role = ElectionRole.LEADER
        self._leader_id = self._node_id
        self._leader_url = self._url
        self._votes.clear()
        self._next_heartbeat = now + self._heartbeat
        self._notify()
        logger.info("election %s: leader of term %d", self._node_id, self._term)
        return [self._announce()]

    def _step_down(self, term: int, now: float) -> None:
        was_leader = self._role is ElectionRole.LEADER
        self._term = term
        self._voted_for = None
        self._role = ElectionRole.FOLLOWER
        self._votes.clear()
        self._leader_id = None
        self._leader_url = None
        if was_leader:
            # A leader keeps no election deadline; give the new term's leader a chance.
            self._reset_deadline(now)
        self._notify()

    # -- helpers --------------------------------------------------------------------

    def _announce(self) -> Outbound:
        return Outbound(None, SwarmMessage.coordinator(self._node_id, self._term, self._url))

    def _vote(self, candidate: str, *, granted: bool) -> Outbound:
        msg = SwarmMessage.vote(self._node_id, candidate, self._term, granted)
        return Outbound(candidate, msg)

    def _reset_deadline(self, now: float) -> None:
        low, high = self._timeout
        bias = min(max(self._priority, 0), _MAX_PRIORITY_BIAS)
        span = (high - low) / (1.0 + 0.1 * bias)
        self._deadline = now + low + span * self._rng.random()

    def _notify(self) -> None:
        current = (self._leader_id, self._term)
        previous = self._announced
        changed = current[0] != previous[0] or (
            current[0] is not None and current[1] != previous[1]
        )
        self._announced = current
        if not changed or self.on_leader_change is None:
            return
        try:
            self.on_leader_change(*current)
        except Exception:
            logger.exception("election %s: on_leader_change callback failed", self._node_id)
