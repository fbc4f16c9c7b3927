"""Fuzz the server from its own OpenAPI spec (schemathesis): no request, valid or not, may
get a 5xx, and every response must match the documented status codes and schemas."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ruvector_edge.llm import RuvLLM
from ruvector_edge.llm.server import create_app

KEY = "fuzz-key"

_llm = RuvLLM()
_llm.add_documents(["Postgres indexes speed up range queries.", "Redis persists with AOF."])
# A schema-violating body (e.g. a string over maxLength) may also be over the body limit:
# 413 is then the right refusal.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 404, 405, 413, 429],
            }
        }
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_llm), config=CONFIG)
auth_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(_llm, api_key=KEY), config=CONFIG
)

# Valid-by-schema data may still be refused by business rules (an unknown model name, an
# unknown request id), so "positive data must be accepted" does not apply.
EXCLUDED = [positive_data_acceptance]
FAST = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
LONG = settings(
    max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


@schema.parametrize()
@FAST
def test_fuzz_no_server_errors(case: Any) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED)


@auth_schema.parametrize()
@FAST
def test_fuzz_with_api_key(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=EXCLUDED)


@pytest.mark.slow
@schema.parametrize()
@LONG
def test_fuzz_long_run(case: Any) -> None:
    case.call_and_validate(excluded_checks=EXCLUDED)
