"""schemathesis against the served OpenAPI spec: generated requests to every operation, no 5xx.

Each test has its own app and generates its own requests: neither depends on the other having run.
"""

import pytest

pytest.importorskip("fastapi", reason="service tests need the serve extra (fastapi)")
schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (the dev extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from facescan.serve import ServeConfig, create_app  # noqa: E402

SETTINGS = settings(max_examples=70, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def _schema():
    # schemathesis sends Host: testserver, which the service serves only when allowed
    config = ServeConfig(request_timeout=20, allowed_hosts=["testserver"])
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(config))


# (schemathesis.pytest.from_fixture would build it lazily, but it breaks on pytest 9: no Function._nodeid)
schema = _schema()


@schema.parametrize()
@SETTINGS
def test_no_server_error(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path} → {response.status_code}: {response.text[:300]}"


def test_enough_requests_were_generated():
    """Its own app and its own generated requests (valid and invalid ones) to every operation."""
    sent: list[tuple[str, str, int]] = []
    for result in _schema().get_all_operations():
        operation = result.ok()
        # invalid requests too where there is a body to get wrong (a GET without parameters has none)
        modes = [schemathesis.GenerationMode.POSITIVE]
        if operation.method.upper() == "POST":
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @SETTINGS
            def call(case):
                sent.append((case.method, case.path, case.call().status_code))

            call()
    by_status: dict[int, int] = {}
    for _, _, status in sent:
        by_status[status] = by_status.get(status, 0) + 1
    print(f"{len(sent)} generated requests, statuses {dict(sorted(by_status.items()))}")
    assert len(sent) >= 200 and all(s < 500 for s in by_status)
    assert {p for _, p, _ in sent} >= {"/v1/analyze", "/v1/ask", "/v1/models", "/healthz"}
