from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ruvector_edge.errors import AuthError
from ruvector_edge.identity import Identity, verify_signature

ORIGIN = Identity.from_seed(b"o" * 32, "origin")


@given(st.binary(max_size=256), st.data())
def test_relay_cannot_alter_signed_data(payload: bytes, data: st.DataObject) -> None:
    sig = ORIGIN.sign(payload, context="patterns")
    verify_signature(ORIGIN.public_key, payload, sig, context="patterns")
    if payload:
        tampered = bytearray(payload)
        i = data.draw(st.integers(0, len(payload) - 1))
        tampered[i] ^= data.draw(st.integers(1, 255))
        try:
            verify_signature(ORIGIN.public_key, bytes(tampered), sig, context="patterns")
        except AuthError:
            return
        raise AssertionError("tampered payload verified")
