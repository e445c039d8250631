"""Numbers and dates are parsed strictly: huge numbers, ISO 8601's other date forms and
Python's lenient spellings are 400s in the v2 shape, never 500s or another value stored."""

from __future__ import annotations

import pytest

from tests.api.test_errors import assert_v2_error
from tests.conftest import ApiAccount

HUGE = "9" * 5000  # past Python's int() digit limit (4,300)


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("view", [None, "ids", "count"])
@pytest.mark.parametrize("value", [HUGE, "0" * 5000 + "1", "-" + HUGE, "1" * 25])
def test_numbers_of_any_length_are_400(
    api: ApiAccount, name: str, view: str | None, value: str
) -> None:
    params = {name: value, **({"view": view} if view else {})}
    response = api.client.get("/contacts", params=params)
    if value.lstrip("0") == "1":  # a long way of writing 1
        assert response.status_code == 200, response.text
        return
    assert_v2_error(response, 400)


@pytest.mark.parametrize("value", ["1_0", " 5", "5 ", "\u0663", "1e2", "0x10", "+-1"])
def test_lenient_spellings_of_numbers_are_400(api: ApiAccount, value: str) -> None:
    assert_v2_error(api.client.get("/contacts", params={"limit": value}), 400)


@pytest.mark.parametrize(
    "birthday",
    [
        "2024-W01-1",
        "20240101T0",
        "2024-001xxx",
        "2024-01-1 ",
        "\uff12\uff10\uff12\uff14-01-01",
        "2024-1-01 ",
        "+2024-01-0",
        "2024-02-30",
    ],
)
def test_birthdays_are_strictly_yyyy_mm_dd(api: ApiAccount, birthday: str) -> None:
    body = assert_v2_error(api.client.post("/contacts", json={"birthday": birthday}), 400)
    assert body["violations"][0]["field"] == "birthday"
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 0}


def test_a_good_birthday_is_kept(api: ApiAccount) -> None:
    created = api.client.post("/contacts", json={"birthday": "2024-01-31"})
    assert created.json()["birthday"] == "2024-01-31"


@pytest.mark.parametrize("cursor", ["r1_0", "r-1", "r+1", "r 1", "r" + "f" * 5000, "rx"])
def test_cursors_are_strict(api: ApiAccount, cursor: str) -> None:
    assert_v2_error(api.client.get("/delta", params={"cursor": cursor}), 400)


@pytest.mark.parametrize("timeout", ["nan", "inf", "1e999", "-1", "1_0", "121", HUGE])
def test_delta_timeouts_are_strict(api: ApiAccount, timeout: str) -> None:
    response = api.client.get("/delta/longpoll", params={"cursor": "0", "timeout": timeout})
    assert_v2_error(response, 400)
