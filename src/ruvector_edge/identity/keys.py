"""Agent identity: an Ed25519 key pair, an id bound to it, and origin signatures."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ruvector_edge.errors import AuthError, IdentityError

__all__ = ["PUBLIC_KEY_SIZE", "SIGNATURE_SIZE", "Identity", "key_fingerprint", "verify_signature"]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
_KEY_FILE_VERSION = 1
# Domain separation: a signature made for one purpose never verifies for another.
_DOMAIN = b"ruvector-edge/sig/v1/"


def key_fingerprint(public_key: bytes) -> str:
    """A short, stable text fingerprint of a raw Ed25519 public key (32 hex chars)."""
    _check_public_key(public_key)
    return hashlib.sha256(public_key).hexdigest()[:32]


def _signing_input(data: bytes, context: str) -> bytes:
    ctx = context.encode("utf-8")
    if len(ctx) > 255:
        raise ValueError("signature context must be at most 255 bytes")
    return _DOMAIN + bytes([len(ctx)]) + ctx + data


def _check_public_key(public_key: bytes) -> None:
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != PUBLIC_KEY_SIZE:
        raise AuthError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} raw bytes")


def verify_signature(
    public_key: bytes, data: bytes, signature: bytes, *, context: str = "data"
) -> None:
    """Check an origin signature made by :meth:`Identity.sign`; raise ``AuthError`` if bad."""
    _check_public_key(public_key)
    if len(signature) != SIGNATURE_SIZE:
        raise AuthError(f"signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}")
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(
            bytes(signature), _signing_input(data, context)
        )
    except (InvalidSignature, ValueError):
        raise AuthError(f"invalid {context!r} signature") from None


class Identity:
    """An agent's Ed25519 signing key and the agent id bound to its public key.

    The id can be chosen (``"worker-1"``) or derived from the key (``agent-<fingerprint>``);
    either way the swarm's admission binds the id to this key on first join, so nobody
    else can claim it later.
    """

    __slots__ = ("_private", "agent_id", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey, agent_id: str | None = None) -> None:
        self._private = private_key
        self.public_key: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.agent_id: str = agent_id or f"agent-{key_fingerprint(self.public_key)[:12]}"
        if not self.agent_id.isprintable() or len(self.agent_id) > 128:
            raise IdentityError(f"agent id must be 1-128 printable characters: {agent_id!r}")

    @classmethod
    def generate(cls, agent_id: str | None = None) -> Identity:
        """A fresh random identity."""
        return cls(Ed25519PrivateKey.generate(), agent_id)

    @classmethod
    def from_seed(cls, seed: bytes, agent_id: str | None = None) -> Identity:
        """A deterministic identity from a 32-byte seed (tests, reproducible demos)."""
        if len(seed) != 32:
            raise IdentityError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed), agent_id)

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the public key."""
        return key_fingerprint(self.public_key)

    def sign(self, data: bytes, *, context: str = "data") -> bytes:
        """Sign ``data`` for ``context`` (domain-separated); 64 bytes."""
        return self._private.sign(_signing_input(data, context))

    def verify(self, data: bytes, signature: bytes, *, context: str = "data") -> None:
        """Verify a signature made by this identity; raise ``AuthError`` if bad."""
        verify_signature(self.public_key, data, signature, context=context)

    # -- key files ------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the key to ``path`` with 0600 permissions (atomically, never world-readable)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() and not overwrite:
            raise IdentityError(f"key file {p} already exists; pass overwrite=True to replace it")
        raw = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        doc = {
            "version": _KEY_FILE_VERSION,
            "type": "ed25519",
            "agent_id": self.agent_id,
            "private_key": base64.b64encode(raw).decode("ascii"),
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
        }
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | Path, *, allow_insecure_permissions: bool = False) -> Identity:
        """Read a key file written by :meth:`save`; refuses group/world-readable files."""
        p = Path(path)
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            raise IdentityError(f"key file {p} does not exist") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO) and not allow_insecure_permissions:
            raise IdentityError(
                f"key file {p} is accessible by group/others (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {p}"
            )
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            if doc.get("version") != _KEY_FILE_VERSION or doc.get("type") != "ed25519":
                raise IdentityError(f"key file {p}: unsupported version or key type")
            raw = base64.b64decode(doc["private_key"], validate=True)
            identity = cls.from_seed(raw, doc.get("agent_id"))
        except IdentityError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IdentityError(f"key file {p} is malformed: {exc}") from None
        public = doc.get("public_key")
        if public is not None and base64.b64decode(public) != identity.public_key:
            raise IdentityError(f"key file {p}: public key does not match the private key")
        return identity

    @classmethod
    def load_or_create(cls, path: str | Path, agent_id: str | None = None) -> Identity:
        """Load the key at ``path``, or create and save one if there is none."""
        p = Path(path)
        if p.exists():
            identity = cls.load(p)
            if agent_id is not None and identity.agent_id != agent_id:
                raise IdentityError(
                    f"key file {p} belongs to {identity.agent_id!r}, not {agent_id!r}"
                )
            return identity
        identity = cls.generate(agent_id)
        identity.save(p)
        return identity

    def __repr__(self) -> str:
        return f"Identity(agent_id={self.agent_id!r}, fingerprint={self.fingerprint[:12]!r})"
