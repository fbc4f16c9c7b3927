from __future__ import annotations

import pytest

from ruvector_edge import errors


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_an_edge_error_with_a_code(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.EdgeError)
    err = cls("what went wrong")
    assert err.message == "what went wrong"
    assert isinstance(err.code, str)
    assert err.code


def test_replay_is_an_auth_error_and_code_can_be_overridden() -> None:
    err = errors.ReplayError("seen before", code="custom")
    assert isinstance(err, errors.AuthError)
    assert err.code == "custom"
    assert errors.ReplayError("x").code == "replay"
