"""schemathesis against the served OpenAPI spec: generated requests to every operation, no 5xx."""

import pytest

pytest.importorskip("fastapi", reason="service tests need the serve extra (fastapi)")
schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (the dev extra)")

from hypothesis import HealthCheck, settings  # noqa: E402

from facescan.serve import ServeConfig, create_app  # noqa: E402

app = create_app(ServeConfig(request_timeout=20))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
SENT: list[tuple[str, str, int]] = []


@schema.parametrize()
@settings(max_examples=70, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_server_error(case):
    response = case.call()
    SENT.append((case.method, case.path, response.status_code))
    assert response.status_code < 500, f"{case.method} {case.path} → {response.status_code}: {response.text[:300]}"


def test_enough_requests_were_generated():
    if not SENT:
        pytest.skip("run together with test_no_server_error")
    by_status: dict[int, int] = {}
    for _, _, status in SENT:
        by_status[status] = by_status.get(status, 0) + 1
    print(f"{len(SENT)} generated requests, statuses {dict(sorted(by_status.items()))}")
    assert len(SENT) >= 200 and all(s < 500 for s in by_status)
    assert {p for _, p, _ in SENT} >= {"/v1/analyze", "/v1/ask", "/v1/models", "/healthz"}
