"""The OpenAPI schema, checked against the live server by schemathesis (bounded budget)."""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db(transaction=True)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_and_never_5xx(case, shop, token, tea):
    case.call_and_validate(
        base_url=shop.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )


def test_docs_page_loads_everything_from_this_server(shop):
    page = requests.get(f"{shop.url}/api/docs", timeout=10)

    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert "cdn" not in page.text.lower()
    assert 'src="http' not in page.text and 'href="http' not in page.text
