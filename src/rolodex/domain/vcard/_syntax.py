"""The content-line layer: vCard text <-> an ordered list of properties, values left raw.

vobject's component layer decodes every property it does not know as a comma list and keeps
only the first element (``X-FOO:a,b`` becomes ``a``, ``NICKNAME:JJ,Janie`` becomes ``JJ``),
which would break the lossless update. So only vobject's line layer is used here (unfolding,
quoted-printable, parameter grammar, groups, folding on output) and values stay exactly as
written until the mapping decodes the ones it owns.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vobject.base import (
    ContentLine,
    VObjectError,
    backslashEscape,
    getLogicalLines,
    textLineToContentLine,
)
from vobject.icalendar import stringToTextValues

from rolodex.domain.vcard._model import InvalidCard

# What a backslash may escape in a text value; ':' because Google escapes it in URLs.
_ESCAPABLE = "\\;,:Nn"
# Singleton parameters that describe the transfer encoding, not the value's kind (vCard 2.1).
_ENCODING_SINGLETONS = frozenset({"base64", "b", "quoted-printable", "8bit", "7bit"})
_FOLD_AT = 75
_NEWLINES = re.compile(r"\r\n|\r|\n")
_PARAM_UNSAFE = re.compile(r'["\x00-\x1f\x7f]')
_VERSION_21 = re.compile(r"^VERSION:[ \t]*2\.1[ \t]*\r?$", re.MULTILINE | re.IGNORECASE)
_QP_PARAM = re.compile(r"^[^\s:][^:\r\n]*;(?:ENCODING=)?QUOTED-PRINTABLE[;:]", re.M | re.I)


@dataclass(eq=False)
class Prop:
    """One property of a card. ``line`` is a vobject ContentLine whose value is still raw."""

    line: Any
    nested: bool = False  # inside an embedded vCard (2.1 AGENT): carried along, never mapped

    def __post_init__(self) -> None:
        # Read for every property by every field's mapping: computed once.
        self.name: str = str(self.line.name).upper()
        group = self.line.group
        self.group: str | None = str(group).lower() if group else None

    @property
    def raw(self) -> str:
        return str(self.line.value)

    def param(self, key: str) -> list[str]:
        return [str(v) for v in self.line.params.get(key.upper(), ())]

    def type_tokens(self) -> list[str]:
        """TYPE values and bare 2.1 parameters, lowercased, in order, without duplicates."""
        tokens: list[str] = []
        for value in self.param("TYPE"):
            tokens.extend(part.strip().lower() for part in value.split(","))
        tokens.extend(str(s).lower() for s in self.line.singletonparams)
        seen: dict[str, None] = {}
        for token in tokens:
            if token and token not in _ENCODING_SINGLETONS:
                seen.setdefault(token, None)
        return list(seen)


def new_prop(
    name: str,
    value: str,
    *,
    group: str | None = None,
    params: Mapping[str, Sequence[str]] | None = None,
) -> Prop:
    """A property with ``value`` already in its wire form (escaped by the caller)."""
    line = ContentLine(name, [], value, group=group, encoded=True)
    line.params = {k.upper(): [_param_safe(v) for v in vs] for k, vs in (params or {}).items()}
    return Prop(line)


def with_value(prop: Prop, value: str) -> Prop:
    """A copy of ``prop`` (group and parameters kept) carrying a new raw value."""
    line = ContentLine(prop.line.name, [], value, group=prop.line.group, encoded=True)
    line.params = {key: list(values) for key, values in prop.line.params.items()}
    line.singletonparams = list(prop.line.singletonparams)
    return Prop(line)


def _param_safe(value: str) -> str:
    # vobject refuses '"' in parameter values and a control character would end the line.
    return _PARAM_UNSAFE.sub("", value)


# Most values have no backslash: they need no unescaping, and splitting them needs no
# character-by-character scan. A sync of a whole book decodes every value, so this matters.


def unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw if "\r" not in raw else _NEWLINES.sub("\n", raw)
    # Quoted-printable 2.1 values carry raw CRLFs; one spelling of a line break round-trips.
    text = str(stringToTextValues(raw, listSeparator=None, charList=_ESCAPABLE)[0])
    return _NEWLINES.sub("\n", text)


def unescape_list(raw: str) -> list[str]:
    if "\\" not in raw:
        return _split(raw, ",")
    return [str(v) for v in stringToTextValues(raw, listSeparator=",", charList=_ESCAPABLE)]


def split_components(raw: str) -> list[str]:
    """The ';'-separated components of N, ADR or ORG, each unescaped."""
    if "\\" not in raw:
        return [unescape(p) for p in _split(raw, ";")]
    parts = stringToTextValues(raw, listSeparator=";", charList=";")
    return [unescape(str(p)) for p in parts]


def _split(raw: str, separator: str) -> list[str]:
    """``raw.split`` as vobject splits: a trailing separator adds no empty item."""
    parts = raw.split(separator)
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def escape(text: str) -> str:
    return str(backslashEscape(text))


def join_components(parts: Iterable[str]) -> str:
    return ";".join(escape(p) for p in parts)


def decode_text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Outlook's 2.1 exports are in the Windows code page unless a CHARSET says otherwise.
        return data.decode("cp1252", errors="replace")


def read_props(data: bytes | str) -> list[Prop]:
    """The properties between the first BEGIN:VCARD and its END:VCARD, in order."""
    text = decode_text(data)
    # vobject's quoted-printable reader takes any line mentioning quoted-printable and ending
    # in "=" as continued, and a whitespace-only folded line as a card break; so it is used
    # only for 2.1 cards or where a parameter (not a value) asks for quoted-printable.
    allow_qp = bool(_VERSION_21.search(text) or _QP_PARAM.search(text))
    props: list[Prop] = []
    depth = 0
    started = False
    try:
        for logical, number in getLogicalLines(io.StringIO(text), allow_qp):
            line = _content_line(logical, number)
            name = str(line.name).upper()
            value = str(line.value).strip().upper()
            if not started:
                if name == "BEGIN" and value == "VCARD":
                    started = True
                    continue
                raise InvalidCard(f"expected BEGIN:VCARD, found a {name} line")
            if name == "BEGIN":
                depth += 1
            elif name == "END":
                if depth == 0:
                    if value != "VCARD":
                        raise InvalidCard(f"END:{value} closes a vCard")
                    return props
                depth -= 1
            props.append(Prop(line, nested=depth > 0 or (name == "END")))
    except VObjectError as exc:
        raise InvalidCard(f"not vCard syntax: {exc}") from None
    except (ValueError, LookupError) as exc:
        # A quoted-printable value that does not decode, or in an unknown CHARSET.
        raise InvalidCard(f"undecodable value: {exc}") from None
    raise InvalidCard("no END:VCARD" if started else "no BEGIN:VCARD")


_NAME = re.compile(r"^(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9_-]+)$")
# A parameter the fast path takes: a name, and plain comma-separated values if any.
_PLAIN_PARAM = re.compile(r"^[A-Za-z0-9-]+(?:=[\w./+-]+(?:,[\w./+-]+)*)?$", re.ASCII)


def _content_line(logical: str, number: int) -> Any:
    """vobject's ``textLineToContentLine``, without its regular expressions for the plain
    lines nearly every card consists of (no quoted parameter values).

    The result is the same ContentLine (tests/domain/test_vcard_syntax.py compares the two on
    every fixture and on generated cards); anything unusual goes to vobject itself.
    """
    head, colon, value = logical.partition(":")
    if not colon or '"' in head:
        return textLineToContentLine(logical, number)
    name_part, *param_parts = head.split(";")
    match = _NAME.match(name_part)
    if match is None:
        return textLineToContentLine(logical, number)
    group, name = match.groups()
    params: dict[str, list[str]] = {}
    singles: list[str] = []
    for part in param_parts:
        if _PLAIN_PARAM.match(part) is None:
            return textLineToContentLine(logical, number)
        key, equals, values = part.partition("=")
        if not equals:
            singles.append(key)
        elif key.upper() == "ENCODING" and values.upper() == "QUOTED-PRINTABLE":
            return textLineToContentLine(logical, number)
        else:
            params.setdefault(key.upper(), []).extend(values.split(","))
    if "QUOTED-PRINTABLE" in singles:
        return textLineToContentLine(logical, number)
    # The same attributes ContentLine.__init__ sets, without its per-attribute __setattr__
    # hook, which costs more than the whole parse of a plain line.
    line = ContentLine.__new__(ContentLine)
    line.__dict__.update(
        group=group,
        behavior=None,
        parentBehavior=None,
        isNative=False,
        name=name.replace("_", "-").upper(),
        encoded=True,
        params=params,
        singletonparams=singles,
        lineNumber=number,
        value=value,
    )
    return line


def serialize(props: Iterable[Prop]) -> bytes:
    """The card as vCard text: CRLF line ends, folded at 75 octets, UTF-8."""
    out = io.StringIO()
    _write(out, ContentLine("BEGIN", [], "VCARD", encoded=True))
    for prop in props:
        _write(out, _upgraded(prop.line))
    _write(out, ContentLine("END", [], "VCARD", encoded=True))
    return out.getvalue().encode("utf-8")


def _write(out: io.StringIO, line: Any) -> None:
    line.serialize(out, _FOLD_AT, validate=False)


def _upgraded(line: Any) -> Any:
    """The line in 3.0/4.0 syntax: bare 2.1 parameters become TYPE values, and a value that
    quoted-printable decoding left with raw line breaks gets them escaped."""
    value = str(line.value)
    singles = [str(s) for s in line.singletonparams]
    stale = "CHARSET" in line.params  # the output is UTF-8 whatever the input was
    encoding = [v.upper() for v in line.params.get("ENCODING", ())]
    if not singles and not stale and "BASE64" not in encoding and not _NEWLINES.search(value):
        return line
    params: dict[str, list[str]] = {
        k: list(v) for k, v in line.params.items() if k not in ("CHARSET", "ENCODING")
    }
    if "ENCODING" in line.params:
        params["ENCODING"] = ["b" if v.upper() == "BASE64" else v for v in line.params["ENCODING"]]
    for single in singles:
        if single.lower() in ("base64", "b"):
            params["ENCODING"] = ["b"]
        elif single.lower() not in _ENCODING_SINGLETONS:
            params.setdefault("TYPE", []).append(single)
    copy = ContentLine(line.name, [], _NEWLINES.sub("\\\\n", value), group=line.group, encoded=True)
    copy.params = params
    return copy
