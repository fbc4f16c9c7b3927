"""Swarm admission: who may join, and which key owns which agent id."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping

from ruvector_edge.errors import AuthError
from ruvector_edge.identity.keys import key_fingerprint
from ruvector_edge.identity.replay import NonceCache, now_ms

__all__ = ["Admission", "KeyRegistry", "generate_join_token", "join_token_mac"]

_TOKEN_DOMAIN = b"ruvector-edge/join-token/v1/"


def generate_join_token() -> str:
    """A new random swarm join token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def _token_key(token: str | bytes) -> bytes:
    raw = token.encode("utf-8") if isinstance(token, str) else bytes(token)
    if not raw:
        raise AuthError("the join token must not be empty")
    # Derive the HMAC key so the raw token never keys anything directly.
    return hashlib.sha256(_TOKEN_DOMAIN + raw).digest()


def join_token_mac(token: str | bytes, role: str, message: bytes) -> bytes:
    """HMAC-SHA256 proving knowledge of the swarm's join token over ``message``.

    ``role`` ("hello"/"welcome") keeps a MAC made by one side from being reflected.
    """
    return hmac.new(_token_key(token), role.encode() + b"\x00" + message, "sha256").digest()


class KeyRegistry:
    """Binds agent ids to Ed25519 public keys: the first admitted key owns the id.

    Thread-safe. The swarm layer persists it (``to_dict``/``from_dict``) so bindings
    survive restarts.
    """

    def __init__(self, bindings: Mapping[str, bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = dict(bindings or {})

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._keys

    def key_for(self, agent_id: str) -> bytes | None:
        """The key bound to ``agent_id``, if any."""
        return self._keys.get(agent_id)

    def check(self, agent_id: str, public_key: bytes) -> None:
        """Raise ``AuthError`` if ``agent_id`` is bound to a different key."""
        bound = self._keys.get(agent_id)
        if bound is not None and not hmac.compare_digest(bound, public_key):
            raise AuthError(
                f"agent id {agent_id!r} belongs to another key "
                f"({key_fingerprint(bound)[:12]}); choose another id",
                code="id_taken",
            )

    def bind(self, agent_id: str, public_key: bytes) -> None:
        """Bind ``agent_id`` to ``public_key`` (no-op if already bound to it)."""
        with self._lock:
            self.check(agent_id, public_key)
            self._keys[agent_id] = bytes(public_key)

    def unbind(self, agent_id: str) -> None:
        """Forget the binding of ``agent_id`` (an operator action)."""
        with self._lock:
            self._keys.pop(agent_id, None)

    def to_dict(self) -> dict[str, bytes]:
        """A copy of the bindings."""
        with self._lock:
            return dict(self._keys)

    @classmethod
    def from_dict(cls, bindings: Mapping[str, bytes]) -> KeyRegistry:
        """Rebuild a registry from :meth:`to_dict` output."""
        return cls(bindings)


class Admission:
    """The swarm's admission policy, checked on every JOIN handshake.

    An agent is admitted when its hello is validly signed, fresh (not replayed), and it
    either holds the join token (HMAC over its hello), or its public key is allow-listed,
    or the policy is explicitly ``open``. In every case its id must not be bound to a
    different key.
    """

    def __init__(
        self,
        join_token: str | bytes | None = None,
        allowed_keys: Iterable[bytes] | Mapping[str, bytes] = (),
        *,
        open_admission: bool = False,
        registry: KeyRegistry | None = None,
        max_skew_ms: int = 30_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if join_token is None and not allowed_keys and not open_admission:
            raise AuthError(
                "admission needs a join token, allow-listed keys, or open_admission=True"
            )
        self.join_token = join_token
        self.open_admission = open_admission
        self.registry = registry if registry is not None else KeyRegistry()
        if isinstance(allowed_keys, Mapping):
            for agent_id, key in allowed_keys.items():
                self.registry.bind(agent_id, key)
            self._allowed = {bytes(k) for k in allowed_keys.values()}
        else:
            self._allowed = {bytes(k) for k in allowed_keys}
        self.nonces = NonceCache(max_skew_ms=max_skew_ms, clock=clock)
        self.clock = clock
        self.max_skew_ms = max_skew_ms

    def allow_key(self, public_key: bytes) -> None:
        """Add a public key to the allow-list."""
        self._allowed.add(bytes(public_key))

    def authorize(self, agent_id: str, public_key: bytes, signed: bytes, token_mac: bytes) -> None:
        """Check token/allow-list and id binding for an already signature-checked hello."""
        if bytes(public_key) in self._allowed:
            pass
        elif self.join_token is not None and token_mac:
            expected = join_token_mac(self.join_token, "hello", signed)
            if not hmac.compare_digest(expected, token_mac):
                raise AuthError("wrong join token", code="bad_token")
        elif self.open_admission:
            pass
        elif self.join_token is not None:
            raise AuthError("a join token is required to join this swarm", code="no_token")
        else:
            raise AuthError("this public key is not on the swarm's allow-list", code="not_allowed")
        self.registry.check(agent_id, public_key)
