"""Identity and security: Ed25519 identities, the signed link handshake, per-link AEAD,
replay protection and swarm admission."""

from ruvector_edge.identity.admission import (
    Admission,
    KeyRegistry,
    generate_join_token,
    join_token_mac,
)
from ruvector_edge.identity.handshake import (
    LINK_PROTOCOL,
    TRAILER_SIZE,
    ClientHandshake,
    LinkSession,
    PeerInfo,
    ServerHandshake,
)
from ruvector_edge.identity.keys import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Identity,
    key_fingerprint,
    verify_signature,
)
from ruvector_edge.identity.replay import NonceCache, ReplayGuard, now_ms

__all__ = [
    "LINK_PROTOCOL",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "TRAILER_SIZE",
    "Admission",
    "ClientHandshake",
    "Identity",
    "KeyRegistry",
    "LinkSession",
    "NonceCache",
    "PeerInfo",
    "ReplayGuard",
    "ServerHandshake",
    "generate_join_token",
    "join_token_mac",
    "key_fingerprint",
    "now_ms",
    "verify_signature",
]
