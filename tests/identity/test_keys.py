from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ruvector_edge.errors import AuthError, IdentityError
from ruvector_edge.identity import Identity, key_fingerprint, verify_signature


def test_default_agent_id_is_derived_from_the_public_key() -> None:
    ident = Identity.from_seed(bytes(range(32)))
    assert ident.agent_id == f"agent-{key_fingerprint(ident.public_key)[:12]}"
    assert Identity.from_seed(bytes(range(32))).agent_id == ident.agent_id
    assert Identity.generate().agent_id != Identity.generate().agent_id


def test_sign_verify_and_domain_separation() -> None:
    ident = Identity.generate("a")
    sig = ident.sign(b"pattern export", context="patterns")
    verify_signature(ident.public_key, b"pattern export", sig, context="patterns")
    with pytest.raises(AuthError):
        verify_signature(ident.public_key, b"pattern exporT", sig, context="patterns")
    with pytest.raises(AuthError):  # same bytes, other purpose
        verify_signature(ident.public_key, b"pattern export", sig, context="memories")
    with pytest.raises(AuthError):
        verify_signature(Identity.generate().public_key, b"pattern export", sig, context="patterns")
    with pytest.raises(AuthError, match="64 bytes"):
        verify_signature(ident.public_key, b"x", sig[:10])
    with pytest.raises(AuthError, match="32 raw bytes"):
        verify_signature(b"short", b"x", sig)


def test_key_file_round_trip_with_0600(tmp_path: Path) -> None:
    ident = Identity.generate("worker-1")
    path = ident.save(tmp_path / "keys" / "agent.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Identity.load(path)
    assert loaded.agent_id == "worker-1"
    assert loaded.public_key == ident.public_key
    loaded.verify(b"m", ident.sign(b"m"))
    with pytest.raises(IdentityError, match="already exists"):
        ident.save(path)


def test_key_file_refuses_unsafe_permissions_and_garbage(tmp_path: Path) -> None:
    path = Identity.generate().save(tmp_path / "a.key")
    os.chmod(path, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        Identity.load(path)
    Identity.load(path, allow_insecure_permissions=True)
    garbage = tmp_path / "g.key"
    garbage.write_text("{not json")
    os.chmod(garbage, 0o600)
    with pytest.raises(IdentityError, match="malformed"):
        Identity.load(garbage)
    with pytest.raises(IdentityError, match="does not exist"):
        Identity.load(tmp_path / "none.key")


def test_load_or_create_is_stable_and_checks_the_id(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    first = Identity.load_or_create(path, "coord")
    again = Identity.load_or_create(path, "coord")
    assert again.public_key == first.public_key
    with pytest.raises(IdentityError, match="belongs to"):
        Identity.load_or_create(path, "someone-else")
