"""The content-line fast path reads every line exactly as vobject's own reader does."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vobject.base import ParseError, getLogicalLines, textLineToContentLine
from vobject.icalendar import stringToTextValues

from rolodex.domain.vcard._syntax import _content_line, split_components, unescape_list

FIXTURES = Path(__file__).parent.parent / "fixtures" / "vcards"


def _same(logical: str) -> None:
    try:
        expected = textLineToContentLine(logical, 1)
    except ParseError:
        with pytest.raises(ParseError):
            _content_line(logical, 1)
        return
    got = _content_line(logical, 1)
    assert (got.name, got.group, got.params, got.singletonparams, got.value) == (
        expected.name,
        expected.group,
        expected.params,
        expected.singletonparams,
        expected.value,
    )


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.vcf")))
def test_every_fixture_line(fixture: str) -> None:
    text = (FIXTURES / fixture).read_text(encoding="utf-8", errors="replace")
    if "VERSION:2.1" in text:
        pytest.skip("2.1 cards take vobject's quoted-printable reader")
    for logical, _number in getLogicalLines(io.StringIO(text), False):
        _same(logical)


_name = st.from_regex(r"\A(?:[a-z0-9]{1,5}\.)?[A-Za-z][A-Za-z0-9_-]{0,8}\Z")
_word = st.text(alphabet=st.characters(blacklist_characters='":;,\r\n'), max_size=8)


@given(
    name=_name,
    params=st.lists(
        st.tuples(
            st.sampled_from(["TYPE", "type", "X-Y", "PREF", "VALUE"]), st.lists(_word, max_size=3)
        ),
        max_size=3,
    ),
    value=st.text(max_size=30).map(lambda v: v.replace("\r", "").replace("\n", "")),
)
def test_generated_lines(name: str, params: list[tuple[str, list[str]]], value: str) -> None:
    head = name + "".join(f";{k}={','.join(vs)}" if vs else f";{k}" for k, vs in params)
    _same(f"{head}:{value}")


@given(st.text(alphabet="ab;,\\", max_size=12))
def test_splitting_matches_vobject(raw: str) -> None:
    if "\\" in raw:
        return  # the slow path is vobject itself
    assert unescape_list(raw) == stringToTextValues(raw, listSeparator=",", charList="\\;,:Nn")
    assert split_components(raw) == stringToTextValues(raw, listSeparator=";", charList=";")
