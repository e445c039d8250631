"""Item types: vCard TYPE parameters and Apple labels <-> Rolodex's free type strings.

Reading maps a set of TYPE tokens to one type; tokens that only qualify (pref, internet,
voice...) are dropped, unknown ones pass through lowercased. Writing uses TYPE tokens only
for the types that have an agreed vCard spelling; every other type becomes an Apple-style
item label (``itemN.TEL`` + ``itemN.X-ABLabel:<type>``), which Apple, Google, DAVx5 and
Nextcloud all show, and which reads back as the same type.
"""

from __future__ import annotations

import re

# Apple's built-in labels, `_$!<Name>!$_`, spelled as the TYPE tokens they stand for.
_APPLE_LABEL = re.compile(r"^_\$!<(.*)>!\$_$")
_APPLE_LABEL_TOKENS: dict[str, tuple[str, ...]] = {
    "mobile": ("cell",),
    "iphone": ("cell",),
    "homefax": ("home", "fax"),
    "workfax": ("work", "fax"),
    "otherfax": ("fax",),
    "homepage": ("home",),
}

_QUALIFIERS: dict[str, frozenset[str]] = {
    "EMAIL": frozenset({"pref", "internet", "x400"}),
    "TEL": frozenset({"pref", "voice"}),
    "ADR": frozenset({"pref", "dom", "intl", "postal", "parcel"}),
    "URL": frozenset({"pref"}),
}

EMAIL_TOKENS: dict[str, tuple[str, ...]] = {
    "work": ("work",),
    "personal": ("home",),
    "other": ("other",),
}
PHONE_TOKENS: dict[str, tuple[str, ...]] = {
    "business": ("work", "voice"),
    "home": ("home", "voice"),
    "mobile": ("cell",),
    "pager": ("pager",),
    "business_fax": ("work", "fax"),
    "home_fax": ("home", "fax"),
    "other_fax": ("fax",),
    "car": ("car",),
    # Apple and Google both spell the company's switchboard "main".
    "organization_main": ("main",),
    "other": ("other",),
}
ADDRESS_TOKENS: dict[str, tuple[str, ...]] = {
    "work": ("work",),
    "home": ("home",),
    "other": ("other",),
}
WEB_PAGE_TOKENS: dict[str, tuple[str, ...]] = {
    "work": ("work",),
    "homepage": ("home",),
    "other": ("other",),
}
TOKENS_BY_PROPERTY: dict[str, dict[str, tuple[str, ...]]] = {
    "EMAIL": EMAIL_TOKENS,
    "TEL": PHONE_TOKENS,
    "ADR": ADDRESS_TOKENS,
    "URL": WEB_PAGE_TOKENS,
}

# Outlook's X-MS-TEL carries the phone kinds vCard has no TYPE for (MS-OXVCARD 2.1.3.9.5).
_MS_TEL_TYPES = {"assistant": "assistant", "company": "organization_main", "radio": "radio"}

# IMPP URI schemes (RFC 4770 leaves the choice to convention) and the protocol they carry.
_SCHEME_PROTOCOLS = {
    "xmpp": "jabber",
    "jabber": "jabber",
    "aim": "aim",
    "skype": "skype",
    "sip": "lync",
    "ymsgr": "yahoo",
    "gtalk": "gtalk",
    "msnim": "msn",
    "msn": "msn",
    "icq": "icq",
    "qq": "qq",
}
PROTOCOL_SCHEMES = {
    "jabber": "xmpp",
    "aim": "aim",
    "skype": "skype",
    "lync": "sip",
    "yahoo": "ymsgr",
    "gtalk": "gtalk",
    "msn": "msnim",
    "icq": "icq",
    "qq": "qq",
}
# Apple names the service in X-SERVICE-TYPE; its scheme for services without one is x-apple.
NO_SCHEME = "x-apple"
SERVICE_NAMES = {
    "jabber": "Jabber",
    "aim": "AIM",
    "skype": "Skype",
    "yahoo": "Yahoo",
    "gtalk": "GoogleTalk",
    "msn": "MSN",
    "icq": "ICQ",
    "qq": "QQ",
}
_SERVICE_PROTOCOLS = {"googletalk": "gtalk", "google talk": "gtalk"}
# vCard 3.0 vendor properties, one per protocol (Apple, Evolution, KDE, Outlook).
VENDOR_IM_PROPERTIES: dict[str, str | None] = {
    "X-AIM": "aim",
    "X-JABBER": "jabber",
    "X-SKYPE": "skype",
    "X-SKYPE-USERNAME": "skype",
    "X-ICQ": "icq",
    "X-MSN": "msn",
    "X-YAHOO": "yahoo",
    "X-QQ": "qq",
    "X-GTALK": "gtalk",
    "X-GOOGLE-TALK": "gtalk",
    "X-GADUGADU": "gadugadu",
    "X-GROUPWISE": "groupwise",
    "X-MS-IMADDRESS": None,
}


def label_type(label: str, prop_name: str) -> str | None:
    """The type an X-ABLabel names: Apple's built-ins mapped, custom text lowercased."""
    match = _APPLE_LABEL.match(label.strip())
    if match is None:
        return label.strip().lower() or None
    inner = match.group(1).strip().lower()
    tokens = list(_APPLE_LABEL_TOKENS.get(inner, (inner,)))
    return tokens_type(prop_name, tokens)


def tokens_type(prop_name: str, tokens: list[str]) -> str | None:
    rest = [t for t in tokens if t not in _QUALIFIERS.get(prop_name, frozenset())]
    kinds = set(rest)
    if prop_name == "TEL":
        found = _phone_type(kinds)
    else:
        found = next(
            (t for t, spelled in TOKENS_BY_PROPERTY[prop_name].items() if spelled[0] in kinds),
            None,
        )
    return found or (rest[0] if rest else None)


def _phone_type(kinds: set[str]) -> str | None:
    # Order matters: "work,fax" is a fax and "work,cell" (Google's workMobile) a mobile.
    if "fax" in kinds:
        return "business_fax" if "work" in kinds else "home_fax" if "home" in kinds else "other_fax"
    checks = (
        ({"cell", "mobile", "iphone"}, "mobile"),
        ({"pager"}, "pager"),
        ({"car"}, "car"),
        ({"main", "company"}, "organization_main"),
        ({"assistant"}, "assistant"),
        ({"radio"}, "radio"),
        ({"work"}, "business"),
        ({"home"}, "home"),
        ({"other"}, "other"),
    )
    return next((kind for spelled, kind in checks if spelled & kinds), None)


def ms_tel_type(tokens: list[str]) -> str | None:
    for token in tokens:
        if token in _MS_TEL_TYPES:
            return _MS_TEL_TYPES[token]
    return tokens_type("TEL", tokens)


def scheme_protocol(scheme: str, service: str | None) -> str | None:
    """The IM protocol of an IMPP value from its URI scheme, else Apple's service name."""
    scheme = scheme.lower()
    if scheme in _SCHEME_PROTOCOLS:
        return _SCHEME_PROTOCOLS[scheme]
    if service and service.strip():
        name = service.strip().lower()
        return _SERVICE_PROTOCOLS.get(name, name)
    if scheme in ("", NO_SCHEME):
        return None
    return scheme
