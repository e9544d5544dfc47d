"""Property-based calls to every operation of the OpenAPI schema, in process: no answer may be a 5xx.

Schemathesis (4.x) reads ``/openapi.json`` from the ASGI app and generates requests from
each operation's parameters and body models, both fitting the schema (positive) and not
(negative); they go to the app with an admin token, on a populated store (real crops,
reviews possible). Half the cases of an operation on ``{inspection_id}`` name a stored
inspection, so reviews, details and evidence are exercised, not only their 404. The SSE
stream is left out: it never ends by design (its auth and bad input are covered in
tests/sync and the auth matrix).

The operations are driven with Hypothesis directly (``operation.as_strategy()``):
schemathesis' own pytest integration (``from_fixture`` / ``parametrize``) relies on a
pytest internal that pytest 9 no longer has.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from tests.api.conftest import bearer, build_populated_app, dispose

MAX_EXAMPLES = 25
LEFT_OUT = "/api/v1/events/stream"


@pytest.fixture(scope="module")
def admin_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, list[str]]]:
    app, services, admin = build_populated_app(Path(tmp_path_factory.mktemp("schemathesis")), 12)
    assert services.inspections is not None
    yield app, admin, [x.id for x in services.inspections.iterate()]
    dispose(services)


def _with_id(case: Any, inspection_id: str | None) -> Any:
    if inspection_id is not None and isinstance(case.path_parameters, dict) and "inspection_id" in case.path_parameters:
        case.path_parameters["inspection_id"] = inspection_id
    return case


def _strategy(operation: Any, ids: list[str]) -> Any:
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    if "{inspection_id}" not in operation.path:
        return cases
    return st.builds(_with_id, cases, st.one_of(st.none(), st.sampled_from(ids)))


def _run(operation: Any, headers: dict[str, str], ids: list[str]) -> None:
    @given(case=_strategy(operation, ids))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    check()


def test_no_operation_answers_a_server_error(admin_app: tuple[Any, str, list[str]]) -> None:
    app, admin, ids = admin_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path=LEFT_OUT)
    failures, labels = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        try:
            _run(operation, bearer(admin), ids)
        except Exception as error:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(error)[:2000]}")
    assert len(labels) >= 25 and f"GET {LEFT_OUT}" not in labels, labels
    assert "POST /api/v1/inspections/{inspection_id}/review" in labels and "GET /api/v1/stats" in labels
    assert not failures, "\n\n".join(failures)
