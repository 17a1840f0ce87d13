"""Schemathesis against the gateway's published OpenAPI schema: no 5xx, every answer as documented.

Every check schemathesis has runs (server errors, status codes, content types, response schemas,
headers, invalid data rejected, auth), except ``positive_data_acceptance``: the contract has
cross-field rules a JSON schema cannot state (exactly one of ``interval_s``/``timestamps_s``,
covariates as long as the series, enough observed samples), so some schema-valid bodies are
rightly refused with a 422 that names the rule.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from support.containers import ComposeFleet


def test_the_gateway_honours_its_schema(fleet: ComposeFleet) -> None:
    schema = schemathesis.openapi.from_url(f"{fleet.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} >= {"POST /predict", "GET /models", "GET /health/ready"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def honours_schema(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=fleet.headers, timeout=30, excluded_checks=[positive_data_acceptance])

        honours_schema()
