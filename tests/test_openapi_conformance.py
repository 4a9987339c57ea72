"""The OpenAPI schema tells the truth: schemathesis generates requests for every documented operation and
checks the real service's answers (no 5xx, documented status codes, content types and response schemas).

The service runs with small limits (a few live instances, a short idle TTL, small groups) so the generated
traffic stays bounded on a small machine; the example count per operation is bounded too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.servicekit import RayCluster, Service, start_service

pytestmark = pytest.mark.slow
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def conformance_service(ray_cluster: RayCluster, appworld_data: Path) -> Iterator[Service]:
    # Both families served (AppWorld on the suite's small dataset): a family without its data answers a
    # typed 503, which the not-a-server-error check would count against the schema.
    svc = start_service(
        ray_cluster.address,
        TRAINBOX_FAMILIES=json.dumps({"appworld": {"env": {"APPWORLD_ROOT": str(appworld_data)}}}),
        TRAINBOX_HOSTS_PER_NODE="1",
        TRAINBOX_MAX_LIVE="6",
        TRAINBOX_MAX_GROUP="3",
        TRAINBOX_IDLE_TTL="20",
        TRAINBOX_MAX_TTL="60",
        TRAINBOX_MAX_BODY_BYTES=str(256 * 1024),
    )
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def api_schema(conformance_service: Service) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{conformance_service.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@pytest.mark.timeout(1200)  # its first run builds the suite's AppWorld dataset and starts a service
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS, timeout=120)
