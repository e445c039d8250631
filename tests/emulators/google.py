"""An emulator of the Google People API v1 and Google's OAuth 2.0 token endpoint.

Written from ``../shared/reference/google-microsoft.md`` (cited "GM §n") and
``../shared/reference/providers.md`` (cited "P §n"), as strict as the real API where the
references say how it behaves: required parameters, paging and sync tokens that must be
replayed with the same parameters, expiring sync and access tokens, etags, singleton fields,
the error bodies, 429s. It is an ASGI app (Starlette); ``GoogleServer`` serves it with
uvicorn on a free 127.0.0.1 port in a thread, and ``python -m tests.emulators.google`` in a
process of its own (the benchmark).

Tests reach into its state through the methods of ``GoogleEmulator`` (``add_person``,
``edit_person``, ``expire_sync_tokens``, ``fail`` ...) as if a user or Google itself had
acted; ``requests`` is the log of every call the app answered.

Usage::

    with GoogleServer() as server:
        refresh_token = server.emulator.grant("client-id", "client-secret")
        server.people_url, server.token_url   # ROLODEX_GOOGLE_PEOPLE_URL / _TOKEN_URL
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import itertools
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.emulators.consent import ConsentScreen

# --- Vocabulary (GM §3.1, P §2a) -------------------------------------------------------------

# connections.list / people.get: "personFields: required, one of 29 masks" (GM §3.1).
PERSON_FIELDS = frozenset(
    {
        "addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData",
        "coverPhotos", "emailAddresses", "events", "externalIds", "genders", "imClients",
        "interests", "locales", "locations", "memberships", "metadata", "miscKeywords",
        "names", "nicknames", "occupations", "organizations", "phoneNumbers", "photos",
        "relations", "sipAddresses", "skills", "urls", "userDefined",
    }
)  # fmt: skip
# updateContact: "updatePersonFields is required and accepts 24 paths (no photos or
# metadata)" (GM §3.1).
UPDATE_PERSON_FIELDS = frozenset(
    {
        "addresses", "biographies", "birthdays", "calendarUrls", "clientData",
        "emailAddresses", "events", "externalIds", "genders", "imClients", "interests",
        "locales", "locations", "memberships", "miscKeywords", "names", "nicknames",
        "occupations", "organizations", "phoneNumbers", "relations", "sipAddresses", "urls",
        "userDefined",
    }
)  # fmt: skip
# otherContacts.list readMask (GM §3.1: "readMask, same sync rules").
OTHER_READ_MASK = frozenset({"emailAddresses", "metadata", "names", "phoneNumbers", "photos"})
# "biographies, birthdays, genders, names: more than one per contact source gives 400" (P §2a).
SINGLETONS = ("names", "biographies", "birthdays", "genders")
GROUP_FIELDS = frozenset({"clientData", "groupType", "memberCount", "metadata", "name"})
# contactGroups.list / get: groupFields "Defaults to metadata, groupType, memberCount, and
# name if not set or set to empty" (developers.google.com/people/api/rest/v1/contactGroups/
# list).
DEFAULT_GROUP_FIELDS = ("metadata", "groupType", "memberCount", "name")
# CreateContactGroupRequest / UpdateContactGroupRequest.readGroupFields: "Defaults to
# metadata, groupType, and name if not set or set to empty"; create's valid fields leave
# out memberCount (people.v1.json, revision 20251117).
DEFAULT_READ_GROUP_FIELDS = ("metadata", "groupType", "name")
CREATE_READ_GROUP_FIELDS = GROUP_FIELDS - {"memberCount"}
# Person.emailAddresses / phoneNumbers: "For people.connections.list and otherContacts.list
# the number of email addresses is limited to 100. If a Person has more email addresses the
# entire set can be obtained by calling GetPeople." (people.v1.json, Person)
LISTED_ITEMS_CAP = 100
# P §3: myContacts and starred accept additions; the deprecated system groups only removal.
ADDABLE_SYSTEM_GROUPS = ("myContacts", "starred")
SYSTEM_GROUPS = {
    "myContacts": "My Contacts",
    "starred": "Starred",
    "friends": "Friends",
    "family": "Family",
    "coworkers": "Coworkers",
}
# The fields of the request bodies (people.v1.json schemas Person, ContactGroup and the
# requests): an unknown one is refused, as Google does ("Invalid JSON payload received.
# Unknown name ... Cannot find field."). Proto JSON takes each name in lowerCamelCase or as
# in the proto (snake_case).
PERSON_KEYS = frozenset(
    {
        "addresses", "ageRange", "ageRanges", "biographies", "birthdays", "braggingRights",
        "calendarUrls", "clientData", "coverPhotos", "emailAddresses", "etag", "events",
        "externalIds", "fileAses", "genders", "imClients", "interests", "locales", "locations",
        "memberships", "metadata", "miscKeywords", "names", "nicknames", "occupations",
        "organizations", "phoneNumbers", "photos", "relations", "relationshipInterests",
        "relationshipStatuses", "residences", "resourceName", "sipAddresses", "skills",
        "taglines", "urls", "userDefined",
    }
)  # fmt: skip
CONTACT_GROUP_KEYS = frozenset(
    {
        "clientData", "etag", "formattedName", "groupType", "memberCount",
        "memberResourceNames", "metadata", "name", "resourceName",
    }
)  # fmt: skip
BODY_KEYS: dict[str, frozenset[str]] = {
    "people.createContact": PERSON_KEYS,
    "people.updateContact": PERSON_KEYS,
    "people.updateContactPhoto": frozenset({"personFields", "photoBytes", "sources"}),
    "contactGroups.create": frozenset({"contactGroup", "readGroupFields"}),
    "contactGroups.update": frozenset({"contactGroup", "readGroupFields", "updateGroupFields"}),
    "contactGroups.members.modify": frozenset({"resourceNamesToAdd", "resourceNamesToRemove"}),
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _check_keys(data: Any, allowed: frozenset[str], where: str) -> None:
    if not isinstance(data, dict):
        raise invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    for key in data:
        if _camel(key) not in allowed:
            raise invalid(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                "Cannot find field."
            )


# The query parameters each method takes, beside the standard ones of every Google API
# (people.v1.json, revision 20251117, "parameters"): any other is refused, as Google does
# ("Invalid JSON payload received. Unknown name ...: Cannot bind query parameter.").
STANDARD_PARAMS = frozenset(
    {
        "$.xgafv", "access_token", "alt", "callback", "fields", "key", "oauth_token",
        "prettyPrint", "quotaUser", "uploadType", "upload_protocol",
    }
)  # fmt: skip
_READ_PERSON = frozenset({"personFields", "requestMask.includeField", "sources"})
_SYNCED_LIST = frozenset({"pageSize", "pageToken", "requestSyncToken", "sources", "syncToken"})
METHOD_PARAMS: dict[str, frozenset[str]] = {
    "people.connections.list": _SYNCED_LIST | _READ_PERSON | {"sortOrder"},
    "otherContacts.list": _SYNCED_LIST | {"readMask"},
    "people.getBatchGet": _READ_PERSON | {"resourceNames"},
    "people.get": _READ_PERSON,
    "people.createContact": frozenset({"personFields", "sources"}),
    "people.updateContact": frozenset({"personFields", "sources", "updatePersonFields"}),
    "people.deleteContactPhoto": frozenset({"personFields", "sources"}),
    "contactGroups.list": frozenset({"groupFields", "pageSize", "pageToken", "syncToken"}),
    "contactGroups.get": frozenset({"groupFields", "maxMembers"}),
    "contactGroups.delete": frozenset({"deleteContacts"}),
}
SCOPE_CONTACTS = "https://www.googleapis.com/auth/contacts"
SCOPE_CONTACTS_READONLY = "https://www.googleapis.com/auth/contacts.readonly"
SCOPE_OTHER = "https://www.googleapis.com/auth/contacts.other.readonly"
DEFAULT_SCOPES = (SCOPE_CONTACTS, SCOPE_OTHER)
SYNC_TOKEN_TTL = 7 * 86400  # "Sync tokens expire 7 days after the full sync" (GM §3.1)
_DOC = "Valid paths are documented at https://developers.google.com/people/api/rest/v1/people/get."


class ApiError(Exception):
    """An error answered in Google's JSON shape: ``{"error": {"code", "message", "status",
    "details"}}`` (GM §3.1's quoted bodies)."""

    def __init__(
        self,
        code: int,
        status: str,
        message: str,
        *,
        reason: str | None = None,
        errors_reason: str | None = None,
        headers: dict[str, str] | None = None,
        retry_delay: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.reason = reason
        self.errors_reason = errors_reason
        self.headers = headers or {}
        self.retry_delay = retry_delay

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.reason:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": "people.googleapis.com" if self.code != 403 else "googleapis.com",
                }
            ]
        if self.retry_delay:
            # google.rpc.RetryInfo, "Describes when the clients can retry a failed request.
            # Clients could ignore the recommendation here or retry when this information is
            # missing" (cloud.google.com/apis/design/errors#error_details); its retryDelay a
            # Duration in proto JSON ("30s").
            error.setdefault("details", []).append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": self.retry_delay,
                }
            )
        if self.errors_reason:
            # The older per-error list that rate-limit 403s carry ("usageLimits" domain).
            error["errors"] = [
                {"message": self.message, "domain": "usageLimits", "reason": self.errors_reason}
            ]
        return {"error": error}


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "Requested entity was not found.")


@dataclass
class Fault:
    """An injected failure: the next ``times`` requests matching ``method`` and ``path`` (a
    substring of the path, None: any) are answered with ``status``."""

    status: int
    method: str | None = None
    path: str | None = None
    times: int = 1
    retry_after: str | None = None
    grpc_status: str | None = None
    message: str | None = None
    reason: str | None = None
    errors_reason: str | None = None
    retry_delay: str | None = None  # RetryInfo.retryDelay in the body ("30s")
    delay: float = 0.0
    # The request is carried out, then answered with the error: a reply lost on the way.
    after: bool = False

    def error(self) -> ApiError:
        default_status = {
            400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
            404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
            502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
        }  # fmt: skip
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return ApiError(
            self.status,
            self.grpc_status or default_status.get(self.status, "UNKNOWN"),
            self.message or f"injected {self.status}",
            reason=self.reason,
            errors_reason=self.errors_reason,
            headers=headers,
            retry_delay=self.retry_delay,
        )


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: bytes = b""

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class _Book:
    """One kind of item (people, other contacts, groups) with a change order: every change
    gives the item a new sequence number and appends (seq, name) to ``order``; entries whose
    seq is no longer the item's are stale and skipped. Sync tokens are seq numbers, so an
    incremental listing is a bisect into ``order``, and a full listing pages through it."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}  # tombstones for sync-token calls
        self.current: dict[str, int] = {}
        self.order_seqs: list[int] = []
        self.order_names: list[str] = []

    def touch(self, name: str, seq: int) -> None:
        self.current[name] = seq
        self.order_seqs.append(seq)
        self.order_names.append(name)

    def position_after(self, seq: int) -> int:
        return bisect.bisect_right(self.order_seqs, seq)


@dataclass
class _Token:
    """A sync token's state: the book, the seq it covers, the parameters of the call that
    made it (GM §3.1: "all other request parameters must match the first call"), and when
    its chain's full sync started (expiry counts from there)."""

    book: str
    seq: int
    signature: tuple[Any, ...]
    chain_started: float
    expired: bool = False


@dataclass
class _Page:
    book: str
    signature: tuple[Any, ...]
    position: int
    upto: int
    since: int | None
    chain_started: float
    names: list[str] | None = None  # a materialised order (non-default sort orders)


@dataclass
class _Grant:
    client_id: str
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class _Access:
    refresh_token: str
    scopes: tuple[str, ...]
    expires_at: float


def _new_etag(prefix: str = "%") -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()


def _now_rfc3339(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000Z"


def _mask(value: str | None, valid: frozenset[str], name: str, *, required: bool) -> list[str]:
    if not value:
        if required:
            raise invalid(
                f"{name} mask is required. Please specify one or more valid paths. {_DOC}"
            )
        return []
    fields = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith("person."):
            part = part[len("person.") :]
        if part not in valid:
            raise invalid(f'Invalid {name} mask path: "{part}". {_DOC}')
        fields.append(part)
    return fields


def _sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


class GoogleEmulator:
    """The state of one Google user (and the OAuth clients that may act for them), and the
    ASGI app that serves it."""

    def __init__(
        self,
        *,
        access_token_ttl: float = 3600,
        sync_token_ttl: float = SYNC_TOKEN_TTL,
        expired_status: int = 400,
        rotate_refresh_tokens: bool = False,
        log_bodies: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.access_token_ttl = access_token_ttl
        self.sync_token_ttl = sync_token_ttl
        # GM §3.1 / P §2a: expiry is HTTP 400 in practice, "often described as 410": a switch.
        self.expired_status = expired_status
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.log_bodies = log_bodies
        self.clock: Callable[[], float] = time.time
        # people.connections.list: "Writes may have a propagation delay of several minutes
        # for sync requests" (developers.google.com/people/api/rest/v1/people.connections/
        # list): a person created less than this many seconds ago is not in full listings
        # yet (people.get and people:batchGet read it at once).
        self.list_lag = 0.0
        self.clients: dict[str, str] = {}
        # Hosted sign-in (tests.emulators.consent): the consent screen, who the user is.
        self.consent = ConsentScreen()
        # Whether the token endpoint answers an id_token when openid is granted (Google's
        # does); off, a client must learn who signed in from people/me.
        self.id_tokens = True
        self.user_email = "ada.lovelace@gmail.example"
        self.user_name = "Ada Lovelace"
        self.grants: dict[str, _Grant] = {}
        self.access: dict[str, _Access] = {}
        self.token_requests = 0
        self.people = _Book()
        # Old resource name -> new, of people Google re-keyed (``rekey``).
        self.rekeyed: dict[str, str] = {}
        self.others = _Book()
        self.groups = _Book()
        self.photos: dict[str, tuple[bytes, str]] = {}
        self._tokens: dict[str, _Token] = {}
        self._pages: dict[str, _Page] = {}
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._ids = itertools.count(1)
        self.requests: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        # Called with each stored person after a create or update, as Google's own
        # normalisation on write (GM §2 #6; the issue: "a person that Google itself changes on
        # write ... is read back"). Tests set it to change what was written.
        self.rewrite: Callable[[dict[str, Any]], None] | None = None
        self.mutation_latency = 0.0
        # Where photo URLs point: Google serves photos from another host
        # (lh3.googleusercontent.com, P §4), which a client may fail to reach while the API
        # answers; None: this server.
        self.photo_base: str | None = None
        self.unknown_group_status = 400  # a membership of a group not there (``_validate_person``)
        # Whether the request being answered asked for profile data (its ``sources``).
        self._profiles_shown = True
        self._mutating = 0
        self.concurrent_mutations = 0  # GM §3.1: "Mutate requests ... sequentially"
        for group_id, formatted in SYSTEM_GROUPS.items():
            self._put_group(
                f"contactGroups/{group_id}",
                {"name": group_id, "formattedName": formatted, "groupType": "SYSTEM_CONTACT_GROUP"},
            )
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._endpoint,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                )
            ]
        )

    # --- Test controls ----------------------------------------------------------------------

    def grant(
        self,
        client_id: str = "client-id",
        client_secret: str = "client-secret",
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
    ) -> str:
        """A refresh token for the user, as a consent screen would give one."""
        with self.lock:
            self.clients[client_id] = client_secret
            token = "1//" + secrets.token_urlsafe(24)
            self.grants[token] = _Grant(client_id, scopes)
            return token

    def revoke(self, refresh_token: str) -> None:
        """The user revoked access (or a Testing-status app's 7 days passed, GM §3.1)."""
        with self.lock:
            self.grants[refresh_token].revoked = True
            for token, access in list(self.access.items()):
                if access.refresh_token == refresh_token:
                    del self.access[token]

    def expire_access_tokens(self) -> None:
        with self.lock:
            for access in self.access.values():
                access.expires_at = 0

    def expire_sync_tokens(self, book: str | None = None) -> None:
        """Every sync token issued so far is expired (as 7 days later); with ``book``
        ("people", "others", "groups"), that listing's only."""
        with self.lock:
            for token in self._tokens.values():
                if book in (None, token.book):
                    token.expired = True

    def forget_sync_tokens(self) -> None:
        """Every sync token issued so far is unknown (a corrupt token, or one from before
        Google lost its state): 400 INVALID_ARGUMENT, with no EXPIRED_SYNC_TOKEN reason."""
        with self.lock:
            self._tokens.clear()

    def fail(self, status: int, **kwargs: Any) -> Fault:
        fault = Fault(status, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def calls(self, contains: str = "", method: str | None = None) -> list[LoggedRequest]:
        with self.lock:
            return [
                r
                for r in self.requests
                if contains in r.path and (method is None or r.method == method)
            ]

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def add_person(self, person: dict[str, Any] | None = None, **fields: Any) -> str:
        """A contact created at Google (web UI, phone): its resource name."""
        body = dict(person or {}, **fields)
        with self.lock:
            self._validate_person(body, UPDATE_PERSON_FIELDS)
            return self._create(body)["resourceName"]  # type: ignore[no-any-return]

    def add_people(self, people: Iterator[dict[str, Any]]) -> int:
        """Many people at once, unvalidated (the benchmark's seeding)."""
        n = 0
        with self.lock:
            for body in people:
                self._create(body, normalise=False)
                n += 1
        return n

    def edit_person(self, resource_name: str, **fields: Any) -> None:
        """A change made at Google: the named fields replaced (None: removed)."""
        with self.lock:
            person = self.people.items[resource_name]
            for name, value in fields.items():
                if value is None:
                    person.pop(name, None)
                else:
                    person[name] = value
            self._normalise(person)
            self._changed(self.people, resource_name)

    def remove_person(self, resource_name: str) -> None:
        with self.lock:
            self._delete(self.people, resource_name)

    def rekey(self, resource_name: str) -> str:
        """Google gives the person a new resource name (linking with a profile, P §5.2):
        PersonMetadata.previousResourceNames, "Any former resource names this person has
        had ... The resource name may change when adding or removing fields that link a
        contact and profile such as a verified email, verified phone number, or profile
        URL". The new name lists the old one (on sync-token calls only, ``_render``), the
        person's etag changes, and the old name is no longer a person: reads and writes of
        it are 404 NOT_FOUND, as for any resource name Google does not know; but people:batchGet
        answers it with the person under its new name (PersonResponse.requestedResourceName:
        "May be different than the resource name on the returned person. The resource name
        can change when adding or removing fields that link a contact and profile")."""
        with self.lock:
            person = self.people.items.pop(resource_name)
            self.people.current.pop(resource_name, None)
            new = f"people/c{next(self._ids)}{secrets.randbelow(10**6)}"
            person["resourceName"] = new
            person["metadata"].setdefault("previousResourceNames", []).append(resource_name)
            self.people.items[new] = person
            self.rekeyed[resource_name] = new
            self._changed(self.people, new)
            return new

    def link_profile(self, resource_name: str, **fields: list[dict[str, Any]]) -> None:
        """The contact is linked with a Google profile, whose fields People merges into the
        person: reads answer them beside the contact's, each item's metadata.source of type
        PROFILE, unless the request's ``sources`` leaves out READ_SOURCE_TYPE_PROFILE
        (people.get, connections.list, people:batchGet, createContact, updateContact...:
        "sources: Defaults to READ_SOURCE_TYPE_CONTACT and READ_SOURCE_TYPE_PROFILE if not
        set"). The items come first: "The items in a field have no guaranteed order"
        (Person)."""
        with self.lock:
            person = self.people.items[resource_name]
            profile_id = str(10**20 + secrets.randbelow(10**20))
            source = {"type": "PROFILE", "id": profile_id}
            person["_profile"] = {
                name: [{**item, "metadata": {"source": source}} for item in items]
                for name, items in fields.items()
            }
            self._changed(self.people, resource_name)

    def person(self, resource_name: str) -> dict[str, Any]:
        with self.lock:
            return orjson.loads(orjson.dumps(self.people.items[resource_name]))  # type: ignore[no-any-return]

    def find_people(self, **match: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [
                p
                for p in self.people.items.values()
                if all(p.get(k) == v for k, v in match.items())
            ]

    def add_other_contact(self, *, photo: bytes | None = None, **fields: Any) -> str:
        """A person Gmail saved from mail; with ``photo`` (JPEG or PNG), one of its own."""
        with self.lock:
            name = f"otherContacts/c{next(self._ids)}"
            person = {"resourceName": name, "etag": _new_etag(), **fields}
            if photo is not None:
                key = secrets.token_urlsafe(12)
                self.photos[key] = (photo, _sniff_image(photo) or "image/jpeg")
                person["_photo"] = key
            person["metadata"] = {
                "sources": [
                    {"type": "OTHER_CONTACT", "id": name.split("/")[1], "etag": _new_etag("#")}
                ],
                "objectType": "PERSON",
            }
            self.others.items[name] = person
            self._changed(self.others, name, etag=False)
            return name

    def add_group(self, name: str) -> str:
        with self.lock:
            return self._create_group({"name": name})["resourceName"]  # type: ignore[no-any-return]

    def user_groups(self) -> dict[str, dict[str, Any]]:
        """The user's contact groups (not the system ones), by name, as copies."""
        with self.lock:
            return {
                g["name"]: orjson.loads(orjson.dumps(g))
                for g in self.groups.items.values()
                if g["groupType"] == "USER_CONTACT_GROUP"
            }

    def edit_group(self, resource_name: str, **fields: Any) -> None:
        """Another client changes a group (its name, its clientData): a new etag. A user
        group's formattedName is its name (contactGroups.update sets both, as the PUT
        handler here does), so a new name renames both."""
        with self.lock:
            group = {**self.groups.items[resource_name], **fields}
            if "name" in fields and group.get("groupType") == "USER_CONTACT_GROUP":
                group["formattedName"] = fields["name"]
            self._put_group(resource_name, group)

    def photo_of(self, resource_name: str) -> bytes | None:
        with self.lock:
            key = self.people.items[resource_name].get("_photo")
            return self.photos[key][0] if key else None

    # --- State changes ------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._last_seq = next(self._seq)
        return self._last_seq

    def _changed(self, book: _Book, name: str, *, etag: bool = True) -> None:
        item = book.items[name]
        if etag:
            item["etag"] = _new_etag()
            for source in item.get("metadata", {}).get("sources", ()):
                source["etag"] = _new_etag("#")
                source["updateTime"] = _now_rfc3339(self.clock())
        book.touch(name, self._next_seq())

    def _delete(self, book: _Book, name: str) -> None:
        item = book.items.pop(name)
        # GM §3.1: "deleted ... returned as a person with PersonMetadata.deleted set to true".
        book.deleted[name] = {
            "resourceName": name,
            "etag": _new_etag(),
            "metadata": {**item.get("metadata", {}), "deleted": True},
        }
        book.touch(name, self._next_seq())

    def _create(self, body: dict[str, Any], *, normalise: bool = True) -> dict[str, Any]:
        person_id = f"c{next(self._ids)}{secrets.randbelow(10**9):09d}"
        name = f"people/{person_id}"
        person = {k: v for k, v in body.items() if k in UPDATE_PERSON_FIELDS}
        person["resourceName"] = name
        person["etag"] = _new_etag()
        person["_created"] = self.clock()
        person["metadata"] = {
            "sources": [
                {
                    "type": "CONTACT",
                    "id": person_id,
                    "etag": _new_etag("#"),
                    "updateTime": _now_rfc3339(self.clock()),
                }
            ],
            "objectType": "PERSON",
        }
        if not person.get("memberships"):
            # A new contact is in My Contacts unless told otherwise.
            person["memberships"] = [_membership("myContacts")]
        if normalise:
            self._normalise(person)
        self.people.items[name] = person
        self.people.touch(name, self._next_seq())
        return person

    def _normalise(self, person: dict[str, Any]) -> None:
        """What Google adds on write: output-only fields and canonical forms."""
        for m in person.get("memberships", ()):
            cgm = m.get("contactGroupMembership")
            if cgm and "contactGroupResourceName" in cgm:
                cgm["contactGroupId"] = cgm["contactGroupResourceName"].split("/", 1)[1]
        for n in person.get("names", ()):
            parts = [
                n.get(k)
                for k in (
                    "honorificPrefix",
                    "givenName",
                    "middleName",
                    "familyName",
                    "honorificSuffix",
                )
            ]
            n["displayName"] = " ".join(p for p in parts if p)
        for phone in person.get("phoneNumbers", ()):
            digits = "".join(ch for ch in phone.get("value", "") if ch.isdigit())
            if phone.get("value", "").startswith("+") and digits:
                phone["canonicalForm"] = "+" + digits
        for kind in ("phoneNumbers", "emailAddresses", "addresses", "urls"):
            for item in person.get(kind, ()):
                if item.get("type"):
                    item["formattedType"] = str(item["type"]).capitalize()
        if self.rewrite is not None:
            self.rewrite(person)

    def _validate_person(self, body: dict[str, Any], fields: Any) -> None:
        for name in SINGLETONS:
            if name in fields and len(body.get(name) or ()) > 1:
                # GM §2 #8.
                raise invalid(f"Cannot have more than one person.{name} per source.")
        if body.get("photos"):
            raise invalid("person.photos is a read only field.")
        for m in body.get("memberships") or ():
            cgm = m.get("contactGroupMembership") or {}
            # ContactGroupMembership: contactGroupId is "Output only"; "Only
            # contact_group_resource_name can be used for modifying memberships."
            group = cgm.get("contactGroupResourceName")
            if group is None:
                # Membership: "Only contact group memberships can be modified"; its
                # domainMembership is "Output only" (people#membership).
                raise invalid("Membership must have a contactGroupMembership.")
            cgm["contactGroupResourceName"] = group
            gid = group.split("/", 1)[1]
            if group not in self.groups.items:
                # The reference names no status for a membership of a group that is not
                # there: 400 INVALID_ARGUMENT by default, or google.rpc.Code NOT_FOUND's
                # 404 ("Some requested entity ... was not found").
                message = f"Contact group resource name {group} is invalid or not found."
                if self.unknown_group_status == 404:
                    raise ApiError(404, "NOT_FOUND", message)
                raise invalid(message)
            if gid in SYSTEM_GROUPS and gid not in ADDABLE_SYSTEM_GROUPS:
                raise invalid(f"Cannot add contacts to deprecated system contact group {group}.")

    def _put_group(self, name: str, group: dict[str, Any]) -> dict[str, Any]:
        group = {**group, "resourceName": name, "etag": _new_etag()}
        group["metadata"] = {"updateTime": _now_rfc3339(self.clock())}
        self.groups.items[name] = group
        self.groups.touch(name, self._next_seq())
        return group

    def _create_group(self, body: dict[str, Any]) -> dict[str, Any]:
        name = (body.get("name") or "").strip()
        if not name:
            raise invalid("Contact group name must not be empty.")
        self._unique_group_name(name, None)
        group = {"name": name, "formattedName": name, "groupType": "USER_CONTACT_GROUP"}
        if body.get("clientData"):
            group["clientData"] = body["clientData"]
        return self._put_group(f"contactGroups/{secrets.token_hex(6)}", group)

    def _unique_group_name(self, name: str, own: str | None) -> None:
        for rn, group in self.groups.items.items():
            if (
                rn != own
                and group["groupType"] == "USER_CONTACT_GROUP"
                and group["name"].casefold() == name.casefold()
            ):
                # GM §3.1: create and update return 409 on a duplicate name.
                raise ApiError(409, "ALREADY_EXISTS", "Contact group name already exists.")

    def _member_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for person in self.people.items.values():
            for m in person.get("memberships", ()):
                cgm = m.get("contactGroupMembership")
                if cgm:
                    rn = cgm["contactGroupResourceName"]
                    counts[rn] = counts.get(rn, 0) + 1
        return counts

    # --- HTTP ---------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        body = await request.body()
        query = parse_qs(request.url.query, keep_blank_values=True)
        status = 500
        try:
            fault = self._take_fault(request.method, path)
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if not fault.after:
                    raise fault.error()
            response = await self._dispatch(request.method, path, query, body, request)
            if fault is not None:
                raise fault.error()
            status = response.status_code
            return response
        except ApiError as exc:
            status = exc.code
            return Response(
                orjson.dumps(exc.body()),
                status_code=exc.code,
                media_type="application/json; charset=UTF-8",
                headers=exc.headers,
            )
        finally:
            with self.lock:
                self.requests.append(
                    LoggedRequest(
                        request.method, path, query, status, body if self.log_bodies else b""
                    )
                )

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and (fault.method in (None, method))
                    and (fault.path is None or fault.path in path)
                ):
                    fault.times -= 1
                    return fault
            return None

    async def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, request: Request
    ) -> Response:
        q = {k: v[-1] for k, v in query.items()}
        if path == "/o/oauth2/v2/auth" and method == "GET":
            return self.consent.page(q, q.get("client_id") in self.clients)
        if path == "/token" and method == "POST":
            return self._token(body, request)
        if path.startswith("/photos/") and method == "GET":
            return self._photo(path)
        if path.startswith("/_emulator/"):
            return self._admin(path, body)
        if not path.startswith("/v1/"):
            raise not_found()
        scopes = self._authenticate(request)
        base = str(request.base_url).rstrip("/")
        rest = path[len("/v1/") :]
        _check_params(method, rest, query)
        mutating = method != "GET"
        need = (SCOPE_CONTACTS,) if mutating else (SCOPE_CONTACTS, SCOPE_CONTACTS_READONLY)
        if rest.startswith("otherContacts"):
            need = (SCOPE_OTHER,)
        if not any(s in scopes for s in need):
            raise ApiError(
                403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.",
                reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            )  # fmt: skip
        if mutating:
            if self._mutating:
                self.concurrent_mutations += 1
            self._mutating += 1
            try:
                if self.mutation_latency:
                    await asyncio.sleep(self.mutation_latency)
                with self.lock:
                    self._profiles_shown = _profiles_asked(query)
                    result = orjson.dumps(self._mutate(method, rest, q, body, base))
            finally:
                self._mutating -= 1
        else:
            with self.lock:
                # Serialised under the lock: the rendered people share the stored lists.
                self._profiles_shown = _profiles_asked(query)
                result = orjson.dumps(self._read(rest, q, query, base))
        return Response(result, media_type="application/json; charset=UTF-8")

    def _authenticate(self, request: Request) -> tuple[str, ...]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        with self.lock:
            access = self.access.get(token or "")
            if access is None or access.expires_at <= self.clock():
                raise ApiError(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential. See "
                    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                    reason="ACCESS_TOKEN_EXPIRED" if access is not None else "CREDENTIALS_MISSING",
                    headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                )
            return access.scopes

    # --- OAuth token endpoint (GM §3.1 "OAuth") ----------------------------------------------

    def _token(self, body: bytes, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):  # client_secret_basic
            from urllib.parse import unquote

            decoded = base64.b64decode(auth[6:]).decode()
            user, _, password = decoded.partition(":")
            client_id, client_secret = unquote(user), unquote(password)

        def oauth_error(status: int, error: str, description: str) -> Response:
            return Response(
                orjson.dumps({"error": error, "error_description": description}),
                status_code=status,
                media_type="application/json; charset=utf-8",
            )

        with self.lock:
            self.token_requests += 1
            if form.get("grant_type") == "authorization_code":
                return self._code_grant(form, client_id, client_secret, oauth_error)
            if form.get("grant_type") != "refresh_token":
                return oauth_error(
                    400,
                    "unsupported_grant_type",
                    f"Invalid grant_type: {form.get('grant_type', '')}",
                )
            if client_id not in self.clients:
                return oauth_error(401, "invalid_client", "The OAuth client was not found.")
            if self.clients[client_id] != client_secret:
                return oauth_error(401, "invalid_client", "Unauthorized")
            refresh = form.get("refresh_token", "")
            grant = self.grants.get(refresh)
            if grant is None or grant.revoked or grant.client_id != client_id:
                # apache/opendal#3901's body (GM §3.1).
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            access = "ya29." + secrets.token_urlsafe(32)
            self.access[access] = _Access(
                refresh, grant.scopes, self.clock() + self.access_token_ttl
            )
            answer: dict[str, Any] = {
                "access_token": access,
                "expires_in": int(self.access_token_ttl),
                "scope": " ".join(grant.scopes),
                "token_type": "Bearer",
            }
            if self.rotate_refresh_tokens:
                new = "1//" + secrets.token_urlsafe(24)
                self.grants[new] = _Grant(grant.client_id, grant.scopes)
                grant.revoked = True
                answer["refresh_token"] = new
            return Response(orjson.dumps(answer), media_type="application/json; charset=utf-8")

    # --- Hosted sign-in: the consent screen's code grant, who the user is -----------------

    def register_client(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        """An OAuth client of the Cloud project, with a redirect URI registered for it."""
        with self.lock:
            self.clients[client_id] = client_secret
        self.consent.register(client_id, redirect_uri)

    def _code_grant(
        self,
        form: dict[str, str],
        client_id: str | None,
        client_secret: str | None,
        oauth_error: Callable[[int, str, str], Response],
    ) -> Response:
        if client_id not in self.clients or self.clients[client_id] != client_secret:
            return oauth_error(401, "invalid_client", "Unauthorized")
        consented = self.consent.redeem(
            form.get("code", ""),
            client_id,
            form.get("redirect_uri", ""),
            form.get("code_verifier", ""),
        )
        if isinstance(consented, str):
            return oauth_error(400, consented, "Bad Request")
        scopes = tuple(s for s in consented.scope.split() if s.startswith("https://"))
        refresh = self.grant(client_id, client_secret or "", scopes)
        access = "ya29." + secrets.token_urlsafe(32)
        self.access[access] = _Access(refresh, scopes, self.clock() + self.access_token_ttl)
        answer: dict[str, Any] = {
            "access_token": access,
            "expires_in": int(self.access_token_ttl),
            "scope": consented.scope,
            "token_type": "Bearer",
        }
        # Google gives a refresh token at a user's first consent to a client, or when asked
        # again with prompt=consent; ``consent.no_refresh_token`` plays a later sign-in.
        if not self.consent.no_refresh_token:
            answer["refresh_token"] = refresh
        granted = consented.scope.split()
        if "openid" in granted and self.id_tokens:
            # "id_token: A JWT that contains identity information about the user that is
            # digitally signed by Google", when the scopes include openid; email and
            # email_verified with the email scope, name with profile (developers.google.com/
            # identity/openid-connect/openid-connect, "An ID token's payload"). Signed with
            # no key a client could check: a client that took it directly from the token
            # endpoint need not (OpenID Connect Core 3.1.3.7).
            claims: dict[str, Any] = {
                "iss": "https://accounts.google.com",
                "aud": client_id,
                "sub": "1" + str(abs(hash(self.user_email)))[:20],
                "iat": int(self.clock()),
                "exp": int(self.clock()) + 3600,
            }
            if "email" in granted:
                claims["email"], claims["email_verified"] = self.user_email, True
            if "profile" in granted:
                claims["name"] = self.user_name
            answer["id_token"] = _jwt(claims)
        return Response(orjson.dumps(answer), media_type="application/json; charset=utf-8")

    def _me(self) -> dict[str, Any]:
        return {
            "resourceName": "people/me",
            "etag": "%me",
            "names": [{"metadata": {"primary": True}, "displayName": self.user_name}],
            "emailAddresses": [{"metadata": {"primary": True}, "value": self.user_email}],
        }

    def _photo(self, path: str) -> Response:
        key = path[len("/photos/") :]
        if key.startswith("default/"):
            # The generated monogram of a person without a photo (``default: true``).
            return Response(_PLACEHOLDER_PNG, media_type="image/png")
        with self.lock:
            found = self.photos.get(key)
        if found is None:
            return Response(b"", status_code=404)
        return Response(found[0], media_type=found[1])

    def _admin(self, path: str, body: bytes) -> Response:
        """Controls for an emulator in another process (the benchmark)."""
        args = orjson.loads(body) if body else {}
        with self.lock:
            if path == "/_emulator/grant":
                result: Any = {
                    "refresh_token": self.grant(args["client_id"], args["client_secret"])
                }
            elif path == "/_emulator/edit":
                self.edit_person(args.pop("resourceName"), **args)
                result = {}
            elif path == "/_emulator/any":
                result = {"resourceName": next(reversed(self.people.items))}
            elif path == "/_emulator/seed":
                result = {
                    "added": self.add_people(generated_people(args["count"], args.get("start", 0)))
                }
            else:
                raise not_found()
        return Response(orjson.dumps(result), media_type="application/json")

    # --- Reads --------------------------------------------------------------------------------

    def _read(
        self, rest: str, q: dict[str, str], query: dict[str, list[str]], base: str
    ) -> dict[str, Any]:
        if rest == "people/me":
            return self._me()
        if rest == "people/me/connections":
            fields = _mask(q.get("personFields"), PERSON_FIELDS, "personFields", required=True)
            return self._list("people", "connections", q, fields, base, default_size=100)
        if rest.startswith("people/") and rest.endswith("/connections"):
            raise invalid("Only people/me is valid.")  # GM §3.1: "Only people/me is valid."
        if rest == "otherContacts":
            # otherContacts.list sources: "Possible values for this field are:
            # READ_SOURCE_TYPE_CONTACT; READ_SOURCE_TYPE_CONTACT,READ_SOURCE_TYPE_PROFILE.
            # Specifying READ_SOURCE_TYPE_PROFILE without specifying READ_SOURCE_TYPE_CONTACT
            # is not permitted"; readMask's valid paths are the five of OTHER_READ_MASK with
            # the contact source alone, any person field with the profile's too.
            sources = {v for value in query.get("sources", ()) for v in value.split(",")}
            if sources - {"READ_SOURCE_TYPE_CONTACT", "READ_SOURCE_TYPE_PROFILE"} or (
                sources and "READ_SOURCE_TYPE_CONTACT" not in sources
            ):
                raise invalid("Invalid sources: READ_SOURCE_TYPE_CONTACT is required.")
            valid = PERSON_FIELDS if "READ_SOURCE_TYPE_PROFILE" in sources else OTHER_READ_MASK
            fields = _mask(q.get("readMask"), valid, "readMask", required=True)
            return self._list("others", "otherContacts", q, fields, base, default_size=100)
        if rest == "people:batchGet":
            fields = _mask(q.get("personFields"), PERSON_FIELDS, "personFields", required=True)
            names = query.get("resourceNames", [])
            if not names:
                raise invalid("resourceNames must not be empty.")
            if len(names) > 200:  # P §2a: batchGet 200 resource names
                raise invalid("resourceNames must not contain more than 200 resource names.")
            responses = []
            for name in names:
                current = name
                while current in self.rekeyed:
                    current = self.rekeyed[current]
                person = self.people.items.get(current)
                if person is None:
                    responses.append(
                        {
                            "httpStatusCode": 404,
                            "requestedResourceName": name,
                            "status": {"code": 5, "message": "Requested entity was not found."},
                        }
                    )
                else:
                    responses.append(
                        {
                            "httpStatusCode": 200,
                            "requestedResourceName": name,
                            "person": self._render(person, fields, base),
                            "status": {},
                        }
                    )
            return {"responses": responses}
        if rest.startswith("people/c"):
            fields = _mask(q.get("personFields"), PERSON_FIELDS, "personFields", required=True)
            person = self.people.items.get(rest)
            if person is None:
                raise not_found()
            return self._render(person, fields, base)
        if rest == "contactGroups":
            fields = _mask(q.get("groupFields"), GROUP_FIELDS, "groupFields", required=False)
            return self._list(
                "groups",
                "contactGroups",
                q,
                fields or list(DEFAULT_GROUP_FIELDS),
                base,
                default_size=30,
            )
        if rest.startswith("contactGroups/"):
            group = self.groups.items.get(rest)
            if group is None:
                raise not_found()
            fields = _mask(q.get("groupFields"), GROUP_FIELDS, "groupFields", required=False)
            rendered = self._render_group(
                group, fields or list(DEFAULT_GROUP_FIELDS), self._member_counts()
            )
            max_members = int(q.get("maxMembers") or 0)
            if max_members:
                rendered["memberResourceNames"] = [
                    rn for rn, p in self.people.items.items() if _in_group(p, rest)
                ][:max_members]
            return rendered
        raise not_found()

    def _list(
        self,
        book_name: str,
        key: str,
        q: dict[str, str],
        fields: list[str],
        base: str,
        *,
        default_size: int,
    ) -> dict[str, Any]:
        book: _Book = getattr(self, book_name)
        try:
            # pageSize: "Defaults to 100 if not set or set to 0" (people.connections.list,
            # otherContacts.list; 30 for contactGroups.list).
            size = int(q.get("pageSize") or 0) or default_size
        except ValueError:
            raise invalid("Invalid value for pageSize.") from None
        if not 1 <= size <= 1000:  # GM §3.1: pageSize 1-1000
            raise invalid("pageSize must be between 1 and 1000.")
        sort = q.get("sortOrder", "LAST_MODIFIED_ASCENDING")
        if sort not in (
            "LAST_MODIFIED_ASCENDING",
            "LAST_MODIFIED_DESCENDING",
            "FIRST_NAME_ASCENDING",
            "LAST_NAME_ASCENDING",
        ):
            raise invalid(f"Invalid value for sortOrder: {sort}")
        request_sync = q.get("requestSyncToken", "false").lower() == "true"
        sync_token = q.get("syncToken") or None
        # SortOrder: "The order in which a list of connections should be sorted. This is only
        # used if sync is not requested." (people.connections.list reference)
        order = sort if not (request_sync or sync_token) else "LAST_MODIFIED_ASCENDING"
        # What must match across a paging chain and between a token and its next use.
        signature = (book_name, tuple(fields), q.get("sources", ""), sort)
        page_token = q.get("pageToken") or None
        now = self.clock()
        if page_token:
            page = self._pages.get(page_token)
            if page is None or page.book != book_name:
                raise invalid("Request contains an invalid argument.")
            if page.signature != (*signature, size, request_sync, sync_token):
                # GM §3.1: "When the page_token or sync_token is specified, all other request
                # parameters must match the first call."
                raise invalid(
                    "Parameters for the request with a page token must match the first request."
                )
        else:
            since = None
            chain_started = now
            if sync_token:
                token = self._tokens.get(sync_token)
                if token is None or token.book != book_name:
                    raise invalid("Request contains an invalid argument.")  # fleapower#2 (GM §3.1)
                if token.expired or now > token.chain_started + self.sync_token_ttl:
                    raise ApiError(  # GM §3.1's quoted body
                        self.expired_status,
                        "FAILED_PRECONDITION",
                        "Sync token is expired. Clear local cache and retry call without the "
                        "sync token.",
                        reason="EXPIRED_SYNC_TOKEN",
                    )
                if token.signature != signature:
                    raise invalid(
                        "Parameters for the request with a sync token must match the first request."
                    )
                since = token.seq
                chain_started = token.chain_started
            names: list[str] | None = None
            if order != "LAST_MODIFIED_ASCENDING":
                names = self._sorted(book, order, since)
            page = _Page(
                book_name,
                (*signature, size, request_sync, sync_token),
                0 if since is None else book.position_after(since),
                self._last_seq,
                since,
                chain_started,
                names,
            )
        out: list[dict[str, Any]] = []
        position = page.position
        lag_since = now - self.list_lag if self.list_lag and page.since is None else None

        def lagging(item: dict[str, Any]) -> bool:
            return lag_since is not None and item.get("_created", 0.0) > lag_since

        if page.names is not None:
            chunk = page.names[position : position + size]
            position += len(chunk)
            for name in chunk:
                item = book.items.get(name) or (
                    book.deleted.get(name) if page.since is not None else None
                )
                if item is not None and not lagging(item):
                    out.append(
                        self._render_any(book_name, item, fields, base, page.since is not None)
                    )
            done = position >= len(page.names)
        else:
            seqs, order = book.order_seqs, book.order_names
            end = bisect.bisect_right(seqs, page.upto)
            while position < end and len(out) < size:
                seq, name = seqs[position], order[position]
                position += 1
                if book.current.get(name) != seq:
                    continue  # changed again later: reported at its newer position
                item = book.items.get(name)
                if item is None:
                    if page.since is None:
                        continue  # a full listing has no tombstones
                    item = book.deleted.get(name)
                    if item is None:
                        continue
                if lagging(item):
                    continue
                out.append(self._render_any(book_name, item, fields, base, page.since is not None))
            while position < end and book.current.get(book.order_names[position]) != seqs[position]:
                position += 1
            done = position >= end
        answer: dict[str, Any] = {key: out} if out else {}
        # ListConnectionsResponse has totalItems (and the deprecated totalPeople),
        # ListOtherContactsResponse totalSize, ListContactGroupsResponse totalItems.
        if book_name == "people" and page.since is None:
            answer["totalPeople"] = answer["totalItems"] = len(book.items)
        elif book_name == "others" and page.since is None:
            answer["totalSize"] = len(book.items)
        elif book_name == "groups":
            answer["totalItems"] = len(book.items)
        if not done:
            next_token = secrets.token_urlsafe(18)
            self._pages[next_token] = _Page(
                page.book,
                page.signature,
                position,
                page.upto,
                page.since,
                page.chain_started,
                page.names,
            )
            answer["nextPageToken"] = next_token
        elif request_sync or book_name == "groups":
            # GM §3.1 / #7999: nextSyncToken only on the last page; ListConnectionsResponse
            # and ListOtherContactsResponse: "Request must set request_sync_token to return
            # the sync token" (a syncToken alone does not); contactGroups.list has no such
            # parameter and always answers one.
            token_value = secrets.token_urlsafe(24)
            self._tokens[token_value] = _Token(book_name, page.upto, signature, page.chain_started)
            answer["nextSyncToken"] = token_value
        return answer

    def _sorted(self, book: _Book, sort: str, since: int | None) -> list[str]:
        names = [
            n
            for n, s in book.current.items()
            if (since is None and n in book.items) or (since is not None and s > since)
        ]
        if sort == "LAST_MODIFIED_DESCENDING":
            names.sort(key=lambda n: -book.current[n])
        else:
            part = "givenName" if sort == "FIRST_NAME_ASCENDING" else "familyName"
            names.sort(
                key=lambda n: (
                    (book.items.get(n, {}).get("names") or [{}])[0].get(part) or ""
                ).casefold()
            )
        return names

    def _render_any(
        self, book_name: str, item: dict[str, Any], fields: list[str], base: str, sync_call: bool
    ) -> dict[str, Any]:
        if book_name == "groups":
            return self._render_group(item, fields, None)
        if item.get("metadata", {}).get("deleted"):
            return {
                "resourceName": item["resourceName"],
                "etag": item["etag"],
                "metadata": item["metadata"],
            }
        rendered = self._render(item, fields, base, sync_call=sync_call)
        for capped in ("emailAddresses", "phoneNumbers"):
            if len(rendered.get(capped) or ()) > LISTED_ITEMS_CAP:
                rendered[capped] = rendered[capped][:LISTED_ITEMS_CAP]
        return rendered

    def _render(
        self, person: dict[str, Any], fields: list[str], base: str, *, sync_call: bool = False
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"resourceName": person["resourceName"], "etag": person["etag"]}
        for name in fields:
            if name == "photos":
                out["photos"] = [self._photo_item(person, base)]
            elif name == "metadata":
                meta = dict(person["metadata"])
                if not sync_call:
                    # GM §3.1: previousResourceNames is filled only on sync-token calls.
                    meta.pop("previousResourceNames", None)
                out["metadata"] = meta
            else:
                value = person.get(name)
                shown = (person.get("_profile") or {}).get(name) if self._profiles_shown else None
                if shown:
                    value = [*shown, *(value or ())]
                if value:
                    out[name] = value
        return out

    def _photo_item(self, person: dict[str, Any], base: str) -> dict[str, Any]:
        key = person.get("_photo")
        # A field's metadata.source is the person's source: an other contact's is of type
        # OTHER_CONTACT, as its metadata.sources (``add_other_contact``).
        kind = "OTHER_CONTACT" if person["resourceName"].startswith("otherContacts/") else "CONTACT"
        source = {"type": kind, "id": person["resourceName"].split("/", 1)[1]}
        base = self.photo_base or base
        if key:
            return {"metadata": {"primary": True, "source": source}, "url": f"{base}/photos/{key}"}
        letter = ((person.get("names") or [{}])[0].get("givenName") or "?")[:1].upper()
        # P §4: "default=true means a generated placeholder".
        return {
            "metadata": {"primary": True, "source": {"type": "PROFILE", "id": source["id"]}},
            "url": f"{base}/photos/default/{letter}",
            "default": True,
        }

    def _render_group(
        self, group: dict[str, Any], fields: list[str], counts: dict[str, int] | None
    ) -> dict[str, Any]:
        if group.get("metadata", {}).get("deleted"):
            return {
                "resourceName": group["resourceName"],
                "etag": group["etag"],
                "metadata": group["metadata"],
            }
        out: dict[str, Any] = {"resourceName": group["resourceName"], "etag": group["etag"]}
        for name in fields:
            if name == "memberCount":
                if counts is None:
                    counts = self._member_counts()
                out["memberCount"] = counts.get(group["resourceName"], 0)
            elif name == "name":
                out["name"] = group["name"]
                out["formattedName"] = group["formattedName"]
            elif name in group:
                out[name] = group[name]
        return out

    # --- Writes -------------------------------------------------------------------------------

    def _mutate(
        self, method: str, rest: str, q: dict[str, str], body: bytes, base: str
    ) -> dict[str, Any]:
        try:
            data = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            raise invalid("Invalid JSON payload received.") from None
        kind = _method_of(method, rest) or ""
        if kind in BODY_KEYS:
            person = kind in ("people.createContact", "people.updateContact")
            _check_keys(data, BODY_KEYS[kind], "person" if person else "")
            if isinstance(data.get("contactGroup"), dict):
                _check_keys(data["contactGroup"], CONTACT_GROUP_KEYS, "contact_group")
            # Proto JSON names either way; the handlers read lowerCamelCase.
            data = {_camel(k): v for k, v in data.items()}
        if rest == "people:createContact" and method == "POST":
            fields = _mask(q.get("personFields"), PERSON_FIELDS, "personFields", required=False)
            self._validate_person(data, UPDATE_PERSON_FIELDS)
            person = self._create(data)
            # createContact's personFields: "Defaults to all fields if not set."
            return self._render(person, fields or sorted(PERSON_FIELDS), base)
        if rest.startswith("people/") and ":" in rest:
            name, _, verb = rest.partition(":")
            person = self.people.items.get(name)
            if person is None:
                raise not_found()
            if verb == "updateContact" and method == "PATCH":
                return self._update(person, q, data, base)
            if verb == "deleteContact" and method == "DELETE":
                self._delete(self.people, name)
                return {}
            if verb == "updateContactPhoto" and method == "PATCH":
                try:
                    image = base64.b64decode(data.get("photoBytes") or "", validate=False)
                except ValueError:
                    raise invalid("Invalid value at 'photo_bytes'.") from None
                ctype = _sniff_image(image)
                if ctype is None:  # P §4: JPEG or PNG only
                    raise invalid("Invalid photo bytes: must be a JPEG or PNG image.")
                key = secrets.token_urlsafe(12)
                old = person.get("_photo")
                if old:
                    self.photos.pop(old, None)
                self.photos[key] = (image, ctype)
                person["_photo"] = key
                self._changed(self.people, name)
                fields = _mask(
                    data.get("personFields"), PERSON_FIELDS, "personFields", required=False
                )
                return {"person": self._render(person, fields, base)} if fields else {}
            if verb == "deleteContactPhoto" and method == "DELETE":
                old = person.pop("_photo", None)
                if old:
                    self.photos.pop(old, None)
                    self._changed(self.people, name)
                fields = _mask(q.get("personFields"), PERSON_FIELDS, "personFields", required=False)
                # GM §3.1: "If personFields is empty, the post-mutate read is skipped."
                return {"person": self._render(person, fields, base)} if fields else {}
            raise not_found()
        if rest == "contactGroups" and method == "POST":
            # contactGroups.create: POST /v1/contactGroups {contactGroup, readGroupFields};
            # "Created contact group names must be unique to the users contact groups.
            # Attempting to create a group with a duplicate name will return a HTTP 409
            # error." (developers.google.com/people/api/rest/v1/contactGroups/create)
            fields = _mask(
                data.get("readGroupFields"),
                CREATE_READ_GROUP_FIELDS,
                "readGroupFields",
                required=False,
            )
            group = self._create_group(data.get("contactGroup") or {})
            return self._render_group(group, fields or list(DEFAULT_READ_GROUP_FIELDS), None)
        if (
            rest.startswith("contactGroups/")
            and rest.endswith("/members:modify")
            and method == "POST"
        ):
            return self._modify_members(rest[: -len("/members:modify")], data)
        if rest.startswith("contactGroups/"):
            group = self.groups.items.get(rest)
            if group is None:
                raise not_found()
            if group["groupType"] == "SYSTEM_CONTACT_GROUP":
                raise invalid("Cannot modify a system contact group.")
            if method == "PUT":
                # contactGroups.update: PUT /v1/{contactGroup.resourceName} {contactGroup,
                # updateGroupFields (default "name"), readGroupFields}; a duplicate name is
                # 409 as on create (developers.google.com/people/api/rest/v1/contactGroups/
                # update); a stale etag the FAILED_PRECONDITION of every People write.
                given = data.get("contactGroup") or {}
                mask = _mask(
                    data.get("updateGroupFields") or "name",
                    frozenset({"name", "clientData"}),
                    "updateGroupFields",
                    required=False,
                )
                if given.get("etag") and given["etag"] != group["etag"]:
                    raise ApiError(
                        400,
                        "FAILED_PRECONDITION",
                        "Request contact group etag is different than the current one.",
                    )
                if "name" in mask:
                    new_name = (given.get("name") or "").strip()
                    if not new_name:
                        raise invalid("Contact group name must not be empty.")
                    self._unique_group_name(new_name, rest)
                    group["name"] = group["formattedName"] = new_name
                if "clientData" in mask:
                    group["clientData"] = given.get("clientData") or []
                group["etag"] = _new_etag()
                group["metadata"]["updateTime"] = _now_rfc3339(self.clock())
                self.groups.touch(rest, self._next_seq())
                fields = _mask(
                    data.get("readGroupFields"), GROUP_FIELDS, "readGroupFields", required=False
                )
                return self._render_group(group, fields or list(DEFAULT_READ_GROUP_FIELDS), None)
            if method == "DELETE":
                # contactGroups.delete: "deleteContacts: Optional. Set to true to also delete
                # the contacts in the specified group." (developers.google.com/people/api/
                # rest/v1/contactGroups/delete); otherwise they stay and only lose the
                # membership (inferred: the group is gone).
                delete_contacts = q.get("deleteContacts", "false").lower() == "true"
                for rn, person in list(self.people.items.items()):
                    if _in_group(person, rest):
                        if delete_contacts:
                            self._delete(self.people, rn)
                        else:
                            person["memberships"] = [
                                m for m in person["memberships"] if not _is(m, rest)
                            ]
                            self._changed(self.people, rn)
                self._delete(self.groups, rest)
                return {}
        raise not_found()

    def _update(
        self, person: dict[str, Any], q: dict[str, str], data: dict[str, Any], base: str
    ) -> dict[str, Any]:
        mask = _mask(
            q.get("updatePersonFields"), UPDATE_PERSON_FIELDS, "updatePersonFields", required=True
        )
        fields = _mask(q.get("personFields"), PERSON_FIELDS, "personFields", required=False)
        etag = data.get("etag")
        sources = [
            s for s in (data.get("metadata") or {}).get("sources") or () if isinstance(s, dict)
        ]
        # developers.google.com/people/api/rest/v1/people/updateContact: "The server returns
        # a 400 error if person.metadata.sources is not specified for the contact to be
        # updated or if there is no contact source", and a 400 with reason
        # "failedPrecondition" "if person.metadata.sources.etag is different than the
        # contact's etag". (The live service also takes the person's own etag, which is
        # checked below as well.)
        if not any(s.get("type") == "CONTACT" for s in sources):
            raise invalid(
                "Request must set person.metadata.sources with the contact source that is "
                "being updated."
            )
        source_etags = [s.get("etag") for s in sources if s.get("etag")]
        if not etag and not source_etags:
            raise invalid(
                "Request must set person.etag or person.metadata.sources.etag for the source "
                "that is being updated."
            )
        current_sources = {s["etag"] for s in person["metadata"]["sources"]}
        if (etag and etag != person["etag"]) or any(e not in current_sources for e in source_etags):
            # Sailfish googlepeopleapi.cpp's quoted body (GM §3.1).
            raise ApiError(
                400,
                "FAILED_PRECONDITION",
                "Request person.etag is different than the current person.etag. Clear local "
                "cache and get the latest person.",
            )
        # "Any non-contact data in the person to update will be ignored": items a profile
        # gave (their metadata.source says so).
        data = {
            k: [i for i in v if not _from_profile(i)] if k in mask and isinstance(v, list) else v
            for k, v in data.items()
        }
        self._validate_person(data, mask)
        if "memberships" in mask and not any(
            m.get("contactGroupMembership") for m in data.get("memberships") or ()
        ):
            raise invalid("Contact must have at least one contact group membership.")  # P §2a
        if "memberships" in mask:
            # Membership.domainMembership: "Output only"; "Only contact group memberships
            # can be modified" (developers.google.com/people/api/rest/v1/people#membership):
            # Google's own stays whatever the write says.
            data["memberships"] = [
                *(data.get("memberships") or ()),
                *(m for m in person.get("memberships") or () if m.get("domainMembership")),
            ]
        # GM §3.1: "All fields specified in the update_mask will be replaced."
        for name in mask:
            value = data.get(name)
            if value:
                person[name] = value
            else:
                person.pop(name, None)
        self._normalise(person)
        self._changed(self.people, person["resourceName"])
        # updateContact's personFields: "Defaults to all fields if not set."
        return self._render(person, fields or sorted(PERSON_FIELDS), base)

    def _modify_members(self, group_name: str, data: dict[str, Any]) -> dict[str, Any]:
        group = self.groups.items.get(group_name)
        if group is None:
            raise not_found()
        add = data.get("resourceNamesToAdd") or []
        remove = data.get("resourceNamesToRemove") or []
        if len(add) + len(remove) > 1000:  # P §2a: add + remove <= 1000 per call
            raise invalid("Too many resource names: at most 1000 may be added and removed.")
        gid = group_name.split("/", 1)[1]
        if add and gid in SYSTEM_GROUPS and gid not in ADDABLE_SYSTEM_GROUPS:
            raise invalid(f"Cannot add contacts to deprecated system contact group {group_name}.")
        not_found_names: list[str] = []
        last: list[str] = []
        for rn in add:
            person = self.people.items.get(rn)
            if person is None:
                not_found_names.append(rn)
            elif not _in_group(person, group_name):
                person.setdefault("memberships", []).append(_membership(gid))
                self._changed(self.people, rn)
        for rn in remove:
            person = self.people.items.get(rn)
            if person is None:
                not_found_names.append(rn)
                continue
            if not _in_group(person, group_name):
                continue
            kept = [m for m in person["memberships"] if not _is(m, group_name)]
            if not any(m.get("contactGroupMembership") for m in kept):
                last.append(rn)
                continue
            person["memberships"] = kept
            self._changed(self.people, rn)
        out: dict[str, Any] = {}
        if not_found_names:
            out["notFoundResourceNames"] = not_found_names
        if last:
            out["canNotRemoveLastContactGroupResourceNames"] = last
        return out


def _method_of(method: str, rest: str) -> str | None:
    """The People API method a request calls, for ``METHOD_PARAMS``."""
    if rest.endswith("/connections"):
        return "people.connections.list"
    if rest.startswith("people"):
        verb = rest.partition(":")[2]
        if rest == "people:batchGet":
            return "people.getBatchGet"
        if verb:
            return f"people.{verb}"
        return "people.get"
    if rest.startswith("otherContacts"):
        return "otherContacts.list"
    if rest.startswith("contactGroups"):
        if rest.endswith(":modify"):
            return "contactGroups.members.modify"
        kind = {"GET": "get", "PUT": "update", "DELETE": "delete", "POST": "create"}
        return (
            "contactGroups.list"
            if rest == "contactGroups" and method == "GET"
            else (f"contactGroups.{kind.get(method, '')}")
        )
    return None


def _check_params(method: str, rest: str, query: dict[str, list[str]]) -> None:
    name = _method_of(method, rest)
    allowed = METHOD_PARAMS.get(name or "", frozenset()) | STANDARD_PARAMS
    for param in query:
        if param not in allowed:
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{param}": Cannot bind query '
                f"parameter. Field '{param}' could not be found in request message."
            )


def _from_profile(item: Any) -> bool:
    source = ((item.get("metadata") or {}).get("source") or {}) if isinstance(item, dict) else {}
    return source.get("type") in ("PROFILE", "DOMAIN_PROFILE", "ACCOUNT")


def _profiles_asked(query: dict[str, list[str]]) -> bool:
    """Whether a request's ``sources`` (repeated; default CONTACT and PROFILE) asks for
    profile data."""
    sources = [v for value in query.get("sources", ()) for v in value.split(",")]
    return not sources or "READ_SOURCE_TYPE_PROFILE" in sources


def _membership(group_id: str) -> dict[str, Any]:
    return {
        "metadata": {"source": {"type": "CONTACT"}},
        "contactGroupMembership": {
            "contactGroupId": group_id,
            "contactGroupResourceName": f"contactGroups/{group_id}",
        },
    }


def _is(membership: dict[str, Any], group_name: str) -> bool:
    cgm = membership.get("contactGroupMembership") or {}
    return cgm.get("contactGroupResourceName") == group_name  # type: ignore[no-any-return]


def _in_group(person: dict[str, Any], group_name: str) -> bool:
    return any(_is(m, group_name) for m in person.get("memberships", ()))


# A 1x1 PNG: the default monogram's bytes.
_PLACEHOLDER_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

_GIVEN = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Radia",
    "Leslie",
)
_FAMILY = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Lamport",
)


def generated_person(i: int) -> dict[str, Any]:
    """Person ``i`` of a deterministic book (the benchmark's): realistic size and shape."""
    given, family = _GIVEN[i % 10], _FAMILY[(i // 10) % 10]
    person: dict[str, Any] = {
        "names": [
            {
                "givenName": given,
                "familyName": f"{family}{i}",
                "displayName": f"{given} {family}{i}",
            }
        ],
        "emailAddresses": [
            {"value": f"{given.lower()}.{i}@example.com", "type": "work", "formattedType": "Work"},
            {
                "value": f"{given.lower()}{i}@mail.example.org",
                "type": "home",
                "formattedType": "Home",
            },
        ],
        "phoneNumbers": [
            {
                "value": f"+1 415 555 {i % 10000:04d}",
                "type": "mobile",
                "canonicalForm": f"+1415555{i % 10000:04d}",
            },
        ],
        "organizations": [{"name": f"Company {i % 500}", "title": "Engineer"}],
        "addresses": [
            {
                "streetAddress": f"{i % 900 + 1} Main St",
                "city": "Springfield",
                "postalCode": f"{10000 + i % 80000}",
                "country": "US",
                "type": "home",
            }
        ],
        "memberships": [_membership("myContacts")],
    }
    if i % 3 == 0:
        person["birthdays"] = [
            {"date": {"year": 1950 + i % 50, "month": i % 12 + 1, "day": i % 28 + 1}}
        ]
    if i % 7 == 0:
        person["biographies"] = [
            {"value": f"Met at conference {i % 40}.", "contentType": "TEXT_PLAIN"}
        ]
    return person


def generated_people(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    return (generated_person(i) for i in range(start, start + count))


# --- Serving ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class GoogleServer:
    """The emulator served by uvicorn on 127.0.0.1 in a daemon thread."""

    emulator: GoogleEmulator = field(default_factory=GoogleEmulator)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def people_url(self) -> str:
        return self.url

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    def start(self) -> GoogleServer:
        self.port = self.port or free_port()
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("Google emulator did not start")
            time.sleep(0.01)
        return self

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        # Whatever emulator is current: a test may swap in a fresh one (``reset``) and keep
        # the server, which takes a few hundred milliseconds to start.
        await self.emulator.app(scope, receive, send)

    def reset(self, emulator: GoogleEmulator | None = None) -> GoogleEmulator:
        self.emulator = emulator or GoogleEmulator()
        return self.emulator

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GoogleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Google People API emulator.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--people", type=int, default=0)
    args = parser.parse_args()
    emulator = GoogleEmulator(log_bodies=False)
    emulator.add_people(generated_people(args.people))
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(
            emulator.app,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )


if __name__ == "__main__":
    main()


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'emulator', 'typ': 'JWT'})}.{part(claims)}.c2ln"
