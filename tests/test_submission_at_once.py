"""A submission and its payload validated in one call (``submission._at_once``) accept and
refuse exactly what the two steps do, and every refusal is worded by the two steps."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, model_validator

from warren.service.contracts import Catalog, Payload, TaskContract
from warren.service.http.problems import Problem
from warren.service.http.submission import ValidSubmission, validate


class Counted(Payload):
    count: int  # lax: "3" is 3 in a payload, though the submission itself is strict


class Wrapped(BaseModel):
    text: str

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


CATALOG = Catalog(
    (
        TaskContract("t.counted", "q", Counted, max_attempts=2, max_attempts_cap=3),
        TaskContract("t.wrapped", "q", Wrapped),
    )
)


def refusal(data: Any) -> dict[str, Any]:
    with pytest.raises(Problem) as raised:
        validate(data, CATALOG)
    return raised.value.body()


def test_a_payload_keeps_its_own_lax_config_and_the_submission_stays_strict() -> None:
    valid = validate({"type": "t.counted", "payload": {"count": "3"}}, CATALOG)
    assert isinstance(valid, ValidSubmission) and valid.payload_json == b'{"count":3}'
    problem = refusal({"type": "t.counted", "payload": {"count": 3}, "priority": "3"})
    assert problem["errors"] == [
        {"loc": ["priority"], "msg": "Input should be a valid integer", "type": "int_type"}
    ]


def test_a_payload_that_is_not_an_object_is_refused_even_if_its_model_would_take_it() -> None:
    problem = refusal({"type": "t.wrapped", "payload": "hi"})
    assert problem["errors"] == [
        {"loc": ["payload"], "msg": "Input should be a valid dictionary", "type": "dict_type"}
    ]
    assert validate({"type": "t.wrapped", "payload": {"text": "hi"}}, CATALOG).payload_json == (
        b'{"text":"hi"}'
    )


def test_refusals_are_worded_by_the_two_steps() -> None:
    both = refusal({"type": "t.counted", "payload": {"count": "x"}, "priority": 12})
    assert both["detail"] == "the submission is not valid"  # the submission first, alone
    assert [e["loc"] for e in both["errors"]] == [["priority"]]
    payload = refusal({"type": "t.counted", "payload": {"count": "x"}})
    assert payload["detail"] == "payload of t.counted"
    assert [e["loc"] for e in payload["errors"]] == [["payload", "count"]]
    caps = refusal({"type": "t.counted", "payload": {"count": 1}, "max_attempts": 4})
    assert caps["errors"] == [
        {"loc": ["max_attempts"], "type": "less_than_equal", "msg": "at most 3 for t.counted"}
    ]
