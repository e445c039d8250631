"""An emulator of Microsoft Graph v1.0 contacts and contact folders, and of the Microsoft
identity platform's v2.0 token endpoint, for tests and benchmarks.

Written from the references, strict where the real service is strict. Comments name the
source of each behaviour: GM = ``../shared/reference/google-microsoft.md``, PR =
``../shared/reference/providers.md``, DOC = the Graph doc page named (microsoft-graph-docs).

Usage::

    with GraphEmulator() as graph:                   # uvicorn on a free 127.0.0.1 port
        refresh = graph.refresh_token                # a valid grant for graph.client_id
        folder = graph.add_folder("Friends")         # act as "another client"
        cid = graph.add_contact({"givenName": "Ada"}, folder=folder)
        graph.fail(429, times=1, retry_after=None)   # faults, consumed in order
        graph.expire_delta_tokens()                  # next deltaLink: 410 SyncStateNotFound
        graph.requests                               # the request log

``graph_url`` (``.../v1.0``) and ``login_url`` are what ``ROLODEX_MICROSOFT_GRAPH_URL`` and
``ROLODEX_MICROSOFT_LOGIN_URL`` point at. One emulator is one mailbox.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.emulators.consent import ConsentScreen

JSON = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false"

# Every property of a v1.0 contact with its empty value: Graph answers all of them, nulls
# and empty lists included (GM §3.2 "Contact JSON", names from msgraph-sdk's contact.py and
# outlook_item.py).
_ADDRESS_EMPTY: dict[str, Any] = {}
CONTACT_PROPERTIES: dict[str, Any] = {
    "categories": [],
    "birthday": None,
    "fileAs": "",
    "displayName": "",
    "givenName": None,
    "initials": None,
    "middleName": None,
    "nickName": None,
    "surname": None,
    "title": None,
    "yomiGivenName": None,
    "yomiSurname": None,
    "yomiCompanyName": None,
    "generation": None,
    "imAddresses": [],
    "jobTitle": None,
    "companyName": None,
    "department": None,
    "officeLocation": None,
    "profession": None,
    "businessHomePage": None,
    "assistantName": None,
    "manager": None,
    "homePhones": [],
    "mobilePhone": None,
    "businessPhones": [],
    "spouseName": None,
    "personalNotes": "",
    "children": [],
    "emailAddresses": [],
    "homeAddress": _ADDRESS_EMPTY,
    "businessAddress": _ADDRESS_EMPTY,
    "otherAddress": _ADDRESS_EMPTY,
}
# Set by the server only (GM §3.2: "From the base item").
READ_ONLY = frozenset(
    {"id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId"}
)
# Undocumented caps Graph enforces with a 400 (PR §2b, M3; homePhones and imAddresses
# after the EWS slots, PR §2b).
CAPS = {"emailAddresses": 3, "businessPhones": 2, "homePhones": 2, "imAddresses": 3}
ADDRESSES = ("homeAddress", "businessAddress", "otherAddress")
# DOC resources/physicaladdress: the properties of a physicalAddress.
ADDRESS_PARTS = frozenset({"street", "city", "state", "postalCode", "countryOrRegion"})
DEFAULT_PAGE = 10  # PR M8: "default page 10"
MAX_PAGE = 1000  # PR M8: "$top up to 1000 for contacts"
MAX_CONCURRENT = 4  # PR §2b / M8: 4 concurrent requests per mailbox
MAX_PHOTO = 4 * 1024 * 1024  # PR §4: the whole request is limited to 4 MB

_FILTER_EXT = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'([^']*)'\s+and\s+"
    r"\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)$",
    re.IGNORECASE,
)
_EXTENDED_ID = re.compile(
    r"^\w+ (\{[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\} (Name \S.*|Id 0x[0-9a-f]+)"
    r"|0x[0-9a-f]{4})$",
    re.IGNORECASE,
)
_EXPAND_EXT = re.compile(
    r"^singleValueExtendedProperties\(\s*\$filter=id\s+eq\s+'([^']*)'\s*\)$", re.IGNORECASE
)


# What a grant made as the account settings describe covers (PR/issue: "scopes
# Contacts.ReadWrite and offline_access").
GRANT_SCOPE = "offline_access https://graph.microsoft.com/Contacts.ReadWrite"
# OpenID Connect scopes, which every request may name (DOC identity platform
# v2-permissions-and-consent, "OpenID Connect scopes").
_OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


def _scopes(value: str) -> frozenset[str]:
    """Scopes as the identity platform compares them: Graph's named with or without its
    resource URI, in any letter case."""
    out = set()
    for name in value.split():
        name = name.lower()
        if "/" not in name and name not in _OIDC_SCOPES:
            name = "https://graph.microsoft.com/" + name
        out.add(name)
    return frozenset(out)


def graph_id() -> str:
    """Ids like Graph's: long base64 with ``-``, ``_`` and ``=`` (they must be quoted in
    nothing but a path segment, and clients must not assume a shape)."""
    return "AAMkAD" + base64.urlsafe_b64encode(secrets.token_bytes(33)).decode() + "AA="


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Folder:
    id: str
    name: str
    parent: str  # the parent folder's id (the default folder's parent is the mailbox root)


@dataclass
class Contact:
    id: str
    folder: str
    props: dict[str, Any]
    change_key: str
    seq: int
    created: str
    modified: str
    photo: bytes | None = None
    photo_type: str | None = None
    extended: dict[str, str] = field(default_factory=dict)  # lower-cased id -> value
    born: int = 0  # the change sequence of its creation
    changed_at: dict[str, int] = field(default_factory=dict)  # property -> last change

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'


@dataclass
class _Round:
    """One round of a folder's delta: the entries fixed when it started, read page by page."""

    folder: str
    high: int  # the change sequence the round's deltaLink continues from
    select: tuple[str, ...] | None
    entries: list[tuple[str, bool]]  # (contact id, removed)
    empty_first: bool = False
    since: int = 0  # the change sequence its deltaToken named (0: from scratch)


@dataclass
class _DeltaToken:
    folder: str
    since: int
    select: tuple[str, ...] | None
    generation: int


@dataclass
class Fault:
    status: int
    method: str | None
    path_contains: str | None
    times: int
    headers: dict[str, str]
    code: str
    message: str
    # The request is carried out, and only then answered with the fault: a reply lost
    # on the way back (the create happened; the client does not know it).
    after: bool = False


@dataclass
class Logged:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0
    at: float = 0.0
    # Read whole, and being worked on: from here a client gone does not undo it.
    received: bool = False


class GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str) -> bytes:
    # GM §3.2 "Error body": {"error": {"code", "message", "innerError": {"request-id",
    # "date", "client-request-id"}}}.
    rid = str(uuid.uuid4())
    inner = {"date": _now(), "request-id": rid, "client-request-id": rid}
    return orjson.dumps({"error": {"code": code, "message": message, "innerError": inner}})


class GraphEmulator:
    def __init__(
        self,
        *,
        client_id: str = "rolodex-test-app",
        client_secret: str = "s3cret",
        email: str = "adele@contoso.example",
        access_token_lifetime: int = 3600,
        latency: float = 0.0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.email = email
        self.access_token_lifetime = access_token_lifetime
        self.latency = latency  # seconds each Graph request takes (to see concurrency)
        self.lock = threading.RLock()
        self.user_id = str(uuid.uuid4())
        self.root_id = graph_id()  # the mailbox root, parent of the default folder
        self.default_folder = Folder(graph_id(), "Contacts", self.root_id)
        self.folders: dict[str, Folder] = {self.default_folder.id: self.default_folder}
        self.contacts: dict[str, Contact] = {}
        self.seq = 0
        self.tombstones: dict[str, list[tuple[int, str]]] = {}  # folder -> (seq, contact id)
        self.generation = 0  # bumping it invalidates every delta token issued before
        self._rounds: dict[str, _Round] = {}
        self._skip: dict[str, tuple[str, int]] = {}  # skiptoken -> (round id, position)
        self._delta: dict[str, _DeltaToken] = {}
        self.reset_code = "SyncStateNotFound"
        self.reset_status = 410
        self.duplicates = False  # every delta page is sent again as part of the next one
        self.replay_next_round = False  # the next round from a deltaLink replays everything
        self.empty_first_page = False  # a round begins with an empty nextLink page
        self.partial_updates = False  # a round from a deltaLink names only what changed
        # GM §3.2: "@removed":{"reason":"deleted"|"changed"}; "changed" for an item that may
        # come back (DOC delta-query-overview, "Resource representation in the delta query
        # response"), which is gone from the folder all the same.
        self.removed_reason = "deleted"
        self.folder_page_size: int | None = None  # server-side paging of folder lists
        # What GET /me/contactFolders lists. "children": the folders in the default one, each
        # with the default folder's id as parentFolderId, as v1.0 answers
        # (microsoft-graph-docs-contrib#6327's v1.0 response). "default": the default folder
        # itself, its parentFolderId the mailbox root, as the reference's example response
        # shows it (DOC user-list-contactfolders, "Response": one folder, "displayName":
        # "Contacts"). "both": the default folder and the folders in it.
        self.folder_listing = "children"
        # The default folder named in another id form where Graph answers it as a folder
        # (its own id in a listing, the parentFolderId of the folders in it) than as a
        # contact's parentFolderId: Exchange ids of one item come in several forms (DOC
        # user-translateexchangeids: entryId, ewsId, restId, restImmutableEntryId...), and
        # the references' examples show the Contacts folder as "AQMkAD..."
        # (user-list-contactfolders, and microsoft-graph-docs-contrib#6327's parentFolderId)
        # where a contact's parentFolderId is "AAMkAG..." (contact-get). Either form names
        # the folder in a request.
        self.default_alias: str | None = None
        # The default folder answered without a parentFolderId (null): the contactFolder
        # reference defines it only as "The ID of the folder's parent folder" (DOC
        # resources/contactfolder), and the mailbox root above the default folder is no
        # contact folder, so an answer need not name it; a client cannot count on it.
        self.default_parent_shown = True
        self.filter_whole_mailbox = False  # an extended-property $filter sees every folder
        self.contacts_delta = False  # /me/contacts/delta served (undocumented)
        self.faults: list[Fault] = []
        self.requests: list[Logged] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.max_concurrent = MAX_CONCURRENT
        self.concurrency_retry_after: str | None = None
        # OAuth state: the live refresh tokens and access tokens (token -> expiry).
        # Live refresh tokens -> the scopes their grant was consented for.
        self.refresh_tokens: dict[str, frozenset[str]] = {}
        self.access_tokens: dict[str, float] = {}
        self.refresh_token = self.issue_refresh_token()
        self.consent = ConsentScreen()  # hosted sign-in (tests.emulators.consent)
        self.token_requests = 0
        self.odata_etags = True
        # Answers for the next token requests, in order: (status, error, AADSTS code,
        # description), e.g. the "temporarily_unavailable" of the identity platform's
        # "Error codes for token endpoint errors" (v2-oauth2-auth-code-flow).
        self.token_faults: list[tuple[int, str, int, str]] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- Lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        return self.base_url + "/v1.0"

    @property
    def login_url(self) -> str:
        return self.base_url

    def start(self) -> Self:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Graph emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- Acting as another client / the tenant admin ----------------------------------------

    def issue_refresh_token(self, scope: str = GRANT_SCOPE) -> str:
        """A refresh token for a grant of ``scope``; by default the two the account
        settings name (Contacts.ReadWrite and offline_access), not User.Read."""
        token = "M.R3_BAY." + secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[token] = _scopes(scope)
        return token

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0.0

    def add_folder(self, name: str, parent: str | None = None) -> str:
        with self.lock:
            folder = Folder(graph_id(), name, parent or self.default_folder.id)
            self.folders[folder.id] = folder
            return folder.id

    def rename_folder(self, folder_id: str, name: str) -> None:
        with self.lock:
            self.folders[folder_id].name = name

    def delete_folder(self, folder_id: str) -> None:
        """Deletes the folder, its subfolders and their contacts (DOC contactfolder-delete)."""
        with self.lock:
            for child in [f.id for f in self.folders.values() if f.parent == folder_id]:
                self.delete_folder(child)
            for contact in [c for c in self.contacts.values() if c.folder == folder_id]:
                self._remove(contact)
            del self.folders[folder_id]

    def add_contact(self, props: dict[str, Any], folder: str | None = None) -> str:
        with self.lock:
            return self._create(folder or self.default_folder.id, dict(props)).id

    def add_contacts(self, many: list[dict[str, Any]], folder: str | None = None) -> list[str]:
        with self.lock:
            return [self._create(folder or self.default_folder.id, dict(p)).id for p in many]

    def edit_contact(self, contact_id: str, props: dict[str, Any]) -> None:
        with self.lock:
            self._patch(self.contacts[contact_id], dict(props))

    def delete_contact(self, contact_id: str) -> None:
        with self.lock:
            self._remove(self.contacts[contact_id])

    def move_contact(self, contact_id: str, folder: str | None, *, same_id: bool = False) -> str:
        """Another client moves the contact to ``folder`` (None: the default one); its id
        afterwards. A moved Outlook item gets a new id, unless ids are immutable ones (DOC
        outlook-immutable-id: "their IDs change ... only if the item is moved"; "immutable
        ID will NOT change if the item is moved to a different folder"): ``same_id``. The
        folder it left reports it removed in its delta either way."""
        with self.lock:
            contact = self.contacts[contact_id]
            self._remove(contact)
            if not same_id:
                contact.id = graph_id()
            contact.folder = folder or self.default_folder.id
            contact.change_key = secrets.token_urlsafe(12)
            contact.seq = self._bump()
            self.contacts[contact.id] = contact
            return contact.id

    def set_photo(self, contact_id: str, data: bytes, content_type: str = "image/jpeg") -> None:
        with self.lock:
            self._set_photo(self.contacts[contact_id], data, content_type)

    def contact(self, contact_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render(self.contacts[contact_id], None)

    def in_folder(self, folder_id: str | None = None) -> list[Contact]:
        folder_id = folder_id or self.default_folder.id
        with self.lock:
            return [c for c in self.contacts.values() if c.folder == folder_id]

    def expire_delta_tokens(self, code: str = "SyncStateNotFound", status: int = 410) -> None:
        """Every deltaLink and nextLink issued so far stops working: GM §2 #11 (410 Gone
        with SyncStateNotFound at random), GM §3.2 "Reset"."""
        with self.lock:
            self.generation += 1
            self.reset_code = code
            self.reset_status = status

    def fail(
        self,
        status: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        retry_after: str | None = None,
        code: str | None = None,
        message: str | None = None,
        after: bool = False,
    ) -> None:
        """Answer the next ``times`` matching Graph requests with ``status`` (``after``:
        once the request has been carried out, as when the reply is lost)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        default_code = {
            429: "TooManyRequests",
            503: "ServiceNotAvailable",
            500: "InternalServerError",
            401: "InvalidAuthenticationToken",
            403: "ErrorAccessDenied",
        }.get(status, "ErrorInternalServerError")
        with self.lock:
            self.faults.append(
                Fault(
                    status,
                    method,
                    path_contains,
                    times,
                    headers,
                    code or default_code,
                    message or f"injected {status}",
                    after,
                )
            )

    def graph_requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.path.startswith("/v1.0")
                and (method is None or r.method == method)
                and contains in r.path + "?" + r.query
            ]

    # --- Model ------------------------------------------------------------------------------

    def _bump(self) -> int:
        self.seq += 1
        return self.seq

    def _create(self, folder: str, body: dict[str, Any]) -> Contact:
        extended = self._take_extended(body)
        body = _writable(body)
        props = dict(CONTACT_PROPERTIES)
        self._validate(body)
        props.update(_addresses_stored(body))
        if not body.get("displayName"):
            # GM/PR M2: displayName may be regenerated by the server.
            props["displayName"] = " ".join(
                p for p in (props.get("givenName"), props.get("surname")) if p
            )
        now = _now()
        contact = Contact(
            id=graph_id(),
            folder=folder,
            props=props,
            change_key=secrets.token_urlsafe(12),
            seq=self._bump(),
            created=now,
            modified=now,
            extended=extended,
        )
        contact.born = contact.seq
        self.contacts[contact.id] = contact
        return contact

    def _patch(self, contact: Contact, body: dict[str, Any]) -> None:
        # PATCH: only the properties in the body change; null clears (DOC contact-update).
        extended = self._take_extended(body)
        body = _writable(body)
        self._validate(body)
        for name in ADDRESSES:
            value = body.get(name)
            if isinstance(value, dict) and not value.keys() >= ADDRESS_PARTS:
                # DOC contact-update (https://learn.microsoft.com/graph/api/contact-update),
                # "Request body": "When you update structured properties such as
                # homeAddress, you must pass the full property set." Whether Graph merges or
                # replaces a partial one is not documented; refused here, so that a client
                # relying on either is caught.
                raise GraphError(
                    400,
                    "ErrorInvalidArgument",
                    f"{name} must be given with its full property set.",
                )
        body = _addresses_stored(body)
        contact.props.update(body)
        contact.extended.update(extended)
        contact.change_key = secrets.token_urlsafe(12)
        contact.seq = self._bump()
        for name in body:
            contact.changed_at[name] = contact.seq
        contact.modified = _now()

    def _remove(self, contact: Contact) -> None:
        del self.contacts[contact.id]
        self.tombstones.setdefault(contact.folder, []).append((self._bump(), contact.id))

    def _set_photo(self, contact: Contact, data: bytes, content_type: str) -> None:
        # The item changes (new changeKey), but a photo is a navigation property, which
        # delta does not track (PR §5.3 point 5, PR §4 "Connector tip").
        contact.photo = data
        contact.photo_type = content_type
        contact.change_key = secrets.token_urlsafe(12)

    @staticmethod
    def _take_extended(body: dict[str, Any]) -> dict[str, str]:
        extended: dict[str, str] = {}
        for prop in body.pop("singleValueExtendedProperties", None) or []:
            if not isinstance(prop, dict) or not isinstance(prop.get("id"), str):
                raise GraphError(400, "ErrorInvalidProperty", "Invalid extended property.")
            if not _EXTENDED_ID.match(prop["id"]) or not isinstance(prop.get("value"), str):
                # DOC resources/extended-properties-overview, "id formats": "{type} {guid}
                # Name {name}", "{type} {guid} Id {id}" or "{type} {proptag}"; DOC
                # resources/singlevaluelegacyextendedproperty: the value is a string.
                raise GraphError(
                    400,
                    "ErrorInvalidProperty",
                    f"The extended property '{prop['id']}' is not well formed.",
                )
            extended[prop["id"].lower()] = str(prop.get("value"))
        return extended

    @staticmethod
    def _validate(body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name not in CONTACT_PROPERTIES:
                raise GraphError(
                    400,
                    "RequestBodyRead",
                    f"The property '{name}' does not exist on type 'microsoft.graph.contact'. "
                    "Make sure to only use property names that are defined by the type or "
                    "mark the type as open type.",
                )
            cap = CAPS.get(name)
            if cap is not None and isinstance(value, list) and len(value) > cap:
                # PR §2b, M3: "EmailAddresses ... exceeds the max allowed value of 3".
                upper = name[0].upper() + name[1:]
                raise GraphError(
                    400,
                    "ErrorInvalidArgument",
                    f"{upper} exceeds the max allowed value of {cap}",
                )
            if name == "birthday" and value is not None:
                try:
                    dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                except ValueError:
                    raise GraphError(
                        400,
                        "RequestBodyRead",
                        f"Cannot convert the literal '{value}' to the expected type "
                        "'Edm.DateTimeOffset'.",
                    ) from None
        for prop in body.values():
            if isinstance(prop, list) and prop and not all(isinstance(v, str | dict) for v in prop):
                raise GraphError(400, "RequestBodyRead", "Invalid collection value.")

    def _render(
        self,
        contact: Contact,
        select: tuple[str, ...] | None,
        expand_ext: str | None = None,
    ) -> dict[str, Any]:
        # ``odata_etags`` off: answers without @odata.etag, as the contact resource's JSON
        # representation documents it (DOC resources/contact: changeKey, no @odata.etag).
        out: dict[str, Any] = {"@odata.etag": contact.etag} if self.odata_etags else {}
        out["id"] = contact.id
        full = {
            "createdDateTime": contact.created,
            "lastModifiedDateTime": contact.modified,
            "changeKey": contact.change_key,
            "parentFolderId": contact.folder,
            **contact.props,
        }
        if select is None:
            out.update(full)
        else:
            for name in select:
                if name in full:
                    out[name] = full[name]
        if expand_ext is not None:
            value = contact.extended.get(expand_ext.lower())
            if value is not None:
                out["singleValueExtendedProperties"] = [{"id": expand_ext, "value": value}]
        return out

    # --- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = scope["path"]
        log = Logged(
            request.method,
            path,
            scope.get("query_string", b"").decode(),
            {k.lower(): v for k, v in request.headers.items()},
            at=time.monotonic(),
        )
        with self.lock:
            self.requests.append(log)
        graph = path.startswith("/v1.0/")
        counted = False
        try:
            if not graph:
                response = await self._login(request)
            else:
                with self.lock:
                    self.in_flight += 1
                    counted = True
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                    over = self.in_flight > self.max_concurrent
                if over:
                    # GM §2 #12: 429 ApplicationThrottled "MailboxConcurrency".
                    headers = {}
                    if self.concurrency_retry_after is not None:
                        headers["Retry-After"] = self.concurrency_retry_after
                    raise GraphError(
                        429,
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        headers,
                    )
                if self.latency:
                    # The request as sent is the request served: a client gone while Graph
                    # works on it (a lost reply, a crash) does not undo it.
                    await request.body()
                    log.received = True
                    await asyncio.sleep(self.latency)
                response = await self._graph(request)
        except GraphError as error:
            response = Response(
                error_body(error.code, error.message),
                status_code=error.status,
                headers=error.headers,
                media_type="application/json",
            )
        finally:
            if counted:
                with self.lock:
                    self.in_flight -= 1
        log.status = response.status_code
        await response(scope, receive, send)

    # --- Token endpoint ---------------------------------------------------------------------

    async def _login(self, request: Request) -> Response:
        # GM §3.2 "OAuth v2.0": POST {login}/{tenant}/oauth2/v2.0/token.
        if re.fullmatch(r"/([^/]+)/oauth2/v2\.0/authorize", request.url.path):
            query = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
            return self.consent.page(query, query.get("client_id") == self.client_id)
        match = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", request.url.path)
        if match is None or request.method != "POST":
            return Response(b"Not found", status_code=404)
        form = parse_qs((await request.body()).decode())

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        with self.lock:
            self.token_requests += 1
            if self.token_faults:
                return _oauth_error(*self.token_faults.pop(0))
            if one("client_id") != self.client_id:
                return _oauth_error(
                    400,
                    "unauthorized_client",
                    700016,
                    f"AADSTS700016: Application with identifier '{one('client_id')}' was not "
                    "found in the directory.",
                )
            if one("client_secret") != self.client_secret:
                return _oauth_error(
                    401,
                    "invalid_client",
                    7000215,
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                    "sent in the request is the client secret value, not the client secret ID.",
                )
            if one("grant_type") == "authorization_code":
                return self._code_grant(one)
            if one("grant_type") != "refresh_token":
                return _oauth_error(
                    400, "unsupported_grant_type", 70003, "AADSTS70003: unsupported grant type"
                )
            token = one("refresh_token")
            if token is None or token not in self.refresh_tokens:
                # GM §3.2: invalid_grant with AADSTS codes (Azure/azure-cli#14244).
                return _oauth_error(
                    400,
                    "invalid_grant",
                    700082,
                    "AADSTS700082: The refresh token has expired due to inactivity. The token "
                    "was issued on 2026-01-01T00:00:00Z and was inactive for 90.00:00:00.",
                )
            granted = self.refresh_tokens[token]
            # The scope is optional (DOC identity platform v2-oauth2-auth-code-flow,
            # "Refresh the access token"): without one, the grant's.
            scope = one("scope") or " ".join(sorted(granted))
            beyond = _scopes(scope) - granted - _OIDC_SCOPES
            if beyond and "https://graph.microsoft.com/.default" not in _scopes(scope):
                # "The scopes requested in this leg must be equivalent to or a subset of the
                # scopes requested in the original authorization_code request leg" (same
                # section); AADSTS65001 is the consent missing (GM §3.2).
                return _oauth_error(
                    400,
                    "invalid_grant",
                    65001,
                    "AADSTS65001: The user or administrator has not consented to use the "
                    f"application with ID '{self.client_id}' for {' '.join(sorted(beyond))}.",
                )
            answer: dict[str, Any] = {
                "token_type": "Bearer",
                "scope": scope,
                "expires_in": self.access_token_lifetime,
                "ext_expires_in": self.access_token_lifetime,
            }
            if "offline_access" in _scopes(scope):
                # The answer's refresh_token: "Only provided if offline_access scope was
                # requested" (same section). "Refresh tokens replace themselves with a fresh
                # token upon every use" (GM §3.2): the old one stops working here, stricter
                # than the doc ("you are expected to discard the old refresh token"), so
                # that a client going back to an old one is caught.
                del self.refresh_tokens[token]
                answer["refresh_token"] = "M.R3_BAY." + secrets.token_urlsafe(24)
                self.refresh_tokens[answer["refresh_token"]] = granted
            access = "EwB" + secrets.token_urlsafe(32)
            self.access_tokens[access] = time.time() + self.access_token_lifetime
            answer["access_token"] = access
        return Response(orjson.dumps(answer), media_type="application/json")

    # --- Hosted sign-in: the consent screen's code grant (tests.emulators.consent) ---------

    def _code_grant(self, one: Callable[[str], str | None]) -> Response:
        consented = self.consent.redeem(
            one("code") or "",
            one("client_id") or "",
            one("redirect_uri") or "",
            one("code_verifier") or "",
        )
        if isinstance(consented, str):
            return _oauth_error(
                400,
                "invalid_grant",
                70008,
                "AADSTS70008: The provided authorization code or refresh token has expired "
                "due to inactivity, was already redeemed, or its PKCE verifier does not match.",
            )
        refresh = self.issue_refresh_token(consented.scope)
        access = "EwB" + secrets.token_urlsafe(32)
        self.access_tokens[access] = time.time() + self.access_token_lifetime
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": consented.scope,
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": access,
        }
        if "offline_access" in consented.scope.split():
            answer["refresh_token"] = refresh
        return Response(orjson.dumps(answer), media_type="application/json")

    # --- Graph ------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        expiry = self.access_tokens.get(header[7:])
        if expiry is None:
            raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.")
        if expiry < time.time():
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )

    def _fault(self, request: Request, *, after: bool = False) -> None:
        with self.lock:
            for fault in self.faults:
                if fault.after != after:
                    continue
                if fault.method is not None and fault.method != request.method:
                    continue
                target = request.url.path + "?" + request.url.query
                if fault.path_contains is not None and fault.path_contains not in unquote(target):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                raise GraphError(fault.status, fault.code, fault.message, dict(fault.headers))

    async def _graph(self, request: Request) -> Response:
        self._authorize(request)
        self._fault(request)
        path = request.url.path[len("/v1.0") :]
        query = {k: v[-1] for k, v in parse_qs(request.url.query, keep_blank_values=True).items()}
        method = request.method
        body: Any = None
        if method in ("POST", "PATCH"):
            raw = await request.body()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                raise GraphError(
                    400, "BadRequest", "Unable to read JSON request payload."
                ) from None
            if not isinstance(body, dict):
                raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        photo_body = await request.body() if method == "PUT" else b""
        segments = [unquote(s) for s in path.strip("/").split("/")]
        with self.lock:
            response = self._route(request, method, segments, query, body, photo_body)
        self._fault(request, after=True)
        return response

    def _route(
        self,
        request: Request,
        method: str,
        seg: list[str],
        query: dict[str, str],
        body: Any,
        photo: bytes,
    ) -> Response:
        if seg[:1] != ["me"]:
            raise _not_found("Resource not found for the segment '" + seg[0] + "'.")
        rest = seg[1:]
        if rest == [] and method == "GET":
            return _json(
                {
                    "id": self.user_id,
                    "displayName": "Adele Vance",
                    "mail": self.email,
                    "userPrincipalName": self.email,
                }
            )
        if rest[:1] == ["contactFolders"]:
            return self._folders_route(request, method, rest[1:], query, body, photo)
        if rest[:1] == ["contacts"]:
            # GM §3.2: /me/contacts is hard-scoped to the default folder for lists and
            # creates, but /me/contacts/{id} searches the whole mailbox.
            if rest[1:] == ["delta"]:
                # DOC contact-delta ("HTTP request"): only GET /me/contactFolders/{id}/
                # contacts/delta is documented; /me/contacts/delta is not, though Graph
                # serves it (Microsoft Q&A 1634378: "The /me/contacts/delta endpoint does
                # not appear require a contact folder, but this endpoint is not yet
                # documented"). Served only when ``contacts_delta`` says so, so that
                # nothing relies on it by accident.
                if not self.contacts_delta:
                    raise _bad_segment("delta")
                return self._contacts_in(
                    request, method, self.default_folder.id, ["delta"], query, body
                )
            if len(rest) == 1:
                return self._contacts_in(
                    request, method, self.default_folder.id, rest[1:], query, body
                )
            return self._contact_route(method, rest[1], rest[2:], query, body, photo, request)
        raise _bad_segment(rest[0] if rest else "")

    def _folders_route(
        self,
        request: Request,
        method: str,
        rest: list[str],
        query: dict[str, str],
        body: Any,
        photo: bytes,
    ) -> Response:
        if not rest:
            # GM §3.2: GET /me/contactFolders lists the folders under the default one.
            if method == "GET":
                return self._folder_list(request, None, query)
            if method == "POST":
                # DOC user-post-contactfolders: POST /me/contactFolders {displayName} makes
                # a folder in the default one, 201 with the contactFolder.
                return self._new_folder(self.default_folder.id, body)
            raise _method()
        _well_formed(rest[0])
        folder = self.folders.get(self._unalias(rest[0]))
        if folder is None:
            raise _not_found("The specified object was not found in the store.")
        tail = rest[1:]
        if not tail:
            if method == "GET":
                return _json(self._folder_json(folder))
            if method == "DELETE":
                # DOC contactfolder-delete: "Delete contactFolder other than the default
                # contactFolder", 204; what the folder holds goes with it (delete_folder).
                if folder.id == self.default_folder.id:
                    raise GraphError(
                        403,
                        "ErrorDeleteDistinguishedFolder",
                        "Distinguished folders cannot be deleted.",
                    )
                self.delete_folder(folder.id)
                return Response(status_code=204)
            if method == "PATCH":
                # DOC contactfolder-update: PATCH displayName (or parentFolderId), 200 with
                # the updated contactFolder. A name another folder beside it has is the
                # 409 a create gets (inferred: folder names are unique among siblings).
                name = body.get("displayName")
                if isinstance(name, str):
                    self._unique_folder_name(folder.parent, name, folder.id)
                    folder.name = name
                return _json(self._folder_json(folder))
            raise _method()
        if tail[0] == "childFolders" and len(tail) == 1:
            if method == "GET":
                return self._folder_list(request, folder.id, query)
            if method == "POST":
                # DOC contactfolder-post-childfolders: a folder inside this one, 201.
                return self._new_folder(folder.id, body)
            raise _method()
        if tail[0] == "contacts":
            if len(tail) == 1 or tail[1] == "delta":
                return self._contacts_in(request, method, folder.id, tail[1:], query, body)
            _well_formed(tail[1])
            contact = self.contacts.get(tail[1])
            if contact is None or contact.folder != folder.id:
                raise _not_found("The specified object was not found in the store.")
            return self._contact_route(method, tail[1], tail[2:], query, body, photo, request)
        raise _bad_segment(tail[0])

    def _unalias(self, folder_id: str) -> str:
        if self.default_alias is not None and folder_id == self.default_alias:
            return self.default_folder.id
        return folder_id

    def _folder_json(self, folder: Folder) -> dict[str, Any]:
        # PR M7: contactFolder {id, displayName, parentFolderId}.
        def named(folder_id: str) -> str:
            if folder_id == self.default_folder.id and self.default_alias is not None:
                return self.default_alias
            return folder_id

        shown = self.default_parent_shown or folder.id != self.default_folder.id
        return {
            "id": named(folder.id),
            "displayName": folder.name,
            "parentFolderId": named(folder.parent) if shown else None,
        }

    def _new_folder(self, parent: str, body: Any) -> Response:
        name = body.get("displayName") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise GraphError(400, "ErrorInvalidRequest", "displayName is required.")
        self._unique_folder_name(parent, name, None)
        folder_id = self.add_folder(name, parent)
        return _json(self._folder_json(self.folders[folder_id]), status=201)

    def _unique_folder_name(self, parent: str, name: str, own: str | None) -> None:
        if any(
            f.parent == parent and f.name == name and f.id != own for f in self.folders.values()
        ):
            raise GraphError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )

    def _folder_list(self, request: Request, parent: str | None, query: dict[str, str]) -> Response:
        # Collections page at 10 by default (PR M8) with an @odata.nextLink ($skip). The
        # server may also page on its own, below the $top asked for (DOC paging, "Paging
        # Microsoft Graph data": results come in pages "due to server-side paging or due to
        # the use of the $top query parameter"; a client follows @odata.nextLink until
        # there is none): ``folder_page_size``.
        # ``parent`` None: GET /me/contactFolders, in the shape ``folder_listing`` names.
        default = self.default_folder
        if parent is not None or self.folder_listing == "children":
            children = [f for f in self.folders.values() if f.parent == (parent or default.id)]
        elif self.folder_listing == "default":
            children = [default]
        else:
            children = [default, *(f for f in self.folders.values() if f.parent == default.id)]
        top = _int(query.get("$top"), DEFAULT_PAGE, MAX_PAGE)
        if self.folder_page_size is not None:
            top = min(top, self.folder_page_size)
        skip = _int(query.get("$skip"), 0, 10**9)
        listed = children[skip : skip + top]
        page: dict[str, Any] = {"value": [self._folder_json(f) for f in listed]}
        if skip + top < len(children):
            page["@odata.nextLink"] = (
                f"{self.graph_url}{request.url.path[len('/v1.0') :]}?$top={top}&$skip={skip + top}"
            )
        return _json(page)

    def _contacts_in(
        self,
        request: Request,
        method: str,
        folder: str,
        tail: list[str],
        query: dict[str, str],
        body: Any,
    ) -> Response:
        if tail == ["delta"]:
            if method != "GET":
                raise _method()
            return self._delta_page(request, folder, query)
        if tail:
            raise _bad_segment(tail[0])
        if method == "POST":
            # DOC contactfolder-post-contacts: POST /me/contactFolders/{id}/contacts.
            _refuse_read_only(body)
            contact = self._create(folder, dict(body))
            return _json(self._render(contact, None), status=201)
        if method != "GET":
            raise _method()
        return self._list(request, folder, query)

    def _list(self, request: Request, folder: str, query: dict[str, str]) -> Response:
        items = [c for c in self.contacts.values() if c.folder == folder]
        flt = query.get("$filter")
        if flt and self.filter_whole_mailbox:
            # DOC singlevaluelegacyextendedproperty-get: "The filter is applied to all
            # instances of the resource in the signed-in user's mailbox."
            items = list(self.contacts.values())
        if flt:
            match = _FILTER_EXT.match(flt.strip())
            if match is None:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "The query filter contains one or more invalid nodes.",
                )
            prop, value = match.group(2).lower(), match.group(3).replace("''", "'")
            # DOC singlevaluelegacyextendedproperty-get: "Filtering the value property of
            # an extended property is case-insensitive."
            items = [
                c
                for c in items
                if (c.extended.get(prop) or "").casefold() == value.casefold()
                and prop in c.extended
            ]
        expand = None
        if query.get("$expand"):
            ext = _EXPAND_EXT.match(query["$expand"].strip())
            if ext is None:
                raise GraphError(400, "BadRequest", "Parsing OData Select and Expand failed.")
            expand = ext.group(1)
        select = _select(query)
        top = _int(query.get("$top"), DEFAULT_PAGE, MAX_PAGE)
        skip = _int(query.get("$skip"), 0, 10**9)
        page: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#users('{self.user_id}')/contacts",
            "value": [self._render(c, select, expand) for c in items[skip : skip + top]],
        }
        if skip + top < len(items):
            nxt = dict(query, **{"$top": str(top), "$skip": str(skip + top)})
            page["@odata.nextLink"] = (
                self.graph_url
                + request.url.path[len("/v1.0") :]
                + "?"
                + "&".join(f"{k}={quote(v, safe='$(),')}" for k, v in nxt.items())
            )
        return _json(page)

    def _contact_route(
        self,
        method: str,
        contact_id: str,
        tail: list[str],
        query: dict[str, str],
        body: Any,
        photo: bytes,
        request: Request,
    ) -> Response:
        _well_formed(contact_id)
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise _not_found("The specified object was not found in the store.")
        if tail:
            return self._photo_route(method, contact, tail, photo, request)
        if method == "GET":
            expand = None
            if query.get("$expand"):
                ext = _EXPAND_EXT.match(query["$expand"].strip())
                if ext is None:
                    raise GraphError(400, "BadRequest", "Parsing OData Select and Expand failed.")
                expand = ext.group(1)
            return _json(self._render(contact, _select(query), expand))
        self._check_if_match(contact, request)
        if method == "PATCH":
            _refuse_read_only(body)
            self._patch(contact, dict(body))
            return _json(self._render(contact, None))
        if method == "DELETE":
            self._remove(contact)
            return Response(status_code=204)  # GM §3.2: DELETE -> 204
        raise _method()

    @staticmethod
    def _check_if_match(contact: Contact, request: Request) -> None:
        # GM §3.2: 412 is the generic If-Match mismatch; resourceModified the etag code.
        wanted = request.headers.get("if-match")
        if wanted is None or wanted.strip() == "*":
            return
        if wanted.strip() != contact.etag:
            raise GraphError(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key "
                "passed in the request does not match the current change key for the item.",
            )

    def _photo_route(
        self, method: str, contact: Contact, tail: list[str], photo: bytes, request: Request
    ) -> Response:
        if tail == ["photo"]:
            if method == "DELETE":
                # GM §2 #13 / §3.2: deleting a contact photo is not supported.
                raise GraphError(400, "ErrorInvalidRequest", "The OData request is not supported.")
            if method != "GET":
                raise _method()
            if contact.photo is None:
                raise _not_found("The photo wasn't found.")
            return _json(
                {
                    "@odata.mediaContentType": contact.photo_type,
                    "@odata.mediaEtag": f'W/"{contact.change_key}"',
                    "id": "240X240",
                    "height": 240,
                    "width": 240,
                }
            )
        if tail == ["photo", "$value"]:
            if method == "GET":
                if contact.photo is None:
                    # DOC profilephoto-get: "If no photo exists, the operation returns 404
                    # Not Found"; the body is Graph's error with code ErrorItemNotFound and
                    # "The photo wasn't found." (microsoftgraph/microsoft-graph-docs#2248).
                    raise _not_found("The photo wasn't found.")
                return Response(contact.photo, media_type=contact.photo_type or "image/jpeg")
            if method in ("PUT", "PATCH"):
                ctype = request.headers.get("content-type", "")
                # DOC profilephoto-update, "Request headers": "Content-Type image/jpeg.
                # Required." (the only type it names), with the JPEG in the body.
                if ctype.split(";")[0].strip().lower() != "image/jpeg":
                    raise GraphError(400, "ErrorInvalidRequest", "Content-Type must be image/jpeg.")
                if photo and not photo.startswith(b"\xff\xd8"):
                    raise GraphError(400, "ErrorInvalidRequest", "The photo is not a JPEG.")
                if not photo:
                    raise GraphError(400, "ErrorInvalidRequest", "Empty photo.")
                if len(photo) > MAX_PHOTO:
                    raise GraphError(413, "ErrorRequestEntityTooLarge", "The request is too large.")
                self._set_photo(contact, photo, ctype.split(";")[0])
                return Response(status_code=200)
            if method == "DELETE":
                raise GraphError(400, "ErrorInvalidRequest", "The OData request is not supported.")
            raise _method()
        raise _bad_segment(tail[0])

    # --- Delta ------------------------------------------------------------------------------

    def _delta_page(self, request: Request, folder: str, query: dict[str, str]) -> Response:
        # PR §5.3, GM §3.2 "Contact delta", DOC contact-delta.
        if "$expand" in query:
            # Outlook delta cannot expand extended properties or extensions: it fails with
            # a 500 (microsoft-graph-docs#1993, microsoft-graph-docs-contrib#7929).
            raise GraphError(
                500, "InternalServerError", "Value cannot be null.\r\nParameter name: type"
            )
        for unsupported in ("$top", "$filter", "$orderby", "$search"):
            if unsupported in query:
                # GM §3.2: "$top is rejected on delta endpoints" (rlrghb/olkcli#56); the doc
                # names only $select as supported.
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    f"The following parameters are not supported with change tracking over the "
                    f"'Contacts' resource: '{unsupported}'.",
                )
        size = DEFAULT_PAGE
        prefer = request.headers.get("prefer", "")
        match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        if match:
            size = max(1, min(int(match.group(1)), MAX_PAGE))
        base = f"{self.graph_url}/me/contactFolders/{quote(folder, safe='')}/contacts/delta"
        if "$skiptoken" in query:
            found = self._skip.get(query["$skiptoken"])
            if found is None or found[0] not in self._rounds:
                raise self._reset(base)
            round_id, pos = found
            round_ = self._rounds[round_id]
            if round_.folder != folder or self.generation != _round_generation(round_id):
                raise self._reset(base)
        else:
            if "$deltatoken" in query:
                token = self._delta.get(query["$deltatoken"])
                if token is None or token.folder != folder or token.generation != self.generation:
                    raise self._reset(base)
                since, select = token.since, token.select
                replay_from = since
                if self.replay_next_round:
                    # Everything sent again, changed or not (removals as they are).
                    replay_from, self.replay_next_round = 0, False
            else:
                since, select = 0, _select(query)
                replay_from = 0
            round_id = f"{self.generation}.{secrets.token_urlsafe(12)}"
            changed = sorted(
                (c.seq, c.id)
                for c in self.contacts.values()
                if c.folder == folder and c.seq > replay_from
            )
            removed = (
                [(s, i) for s, i in self.tombstones.get(folder, []) if s > since] if since else []
            )
            entries = [(cid, False) for _, cid in changed]
            entries += [(cid, True) for _, cid in removed]
            self._rounds[round_id] = _Round(
                folder, self.seq, select, entries, self.empty_first_page, since
            )
            pos = 0
        round_ = self._rounds[round_id]
        if round_.empty_first:
            # "a nextLink page may be empty" (GM §3.2, delta-query-overview).
            round_.empty_first = False
            return self._page(base, [], self._next_skip(round_id, pos))
        chunk = round_.entries[pos : pos + size]
        if self.duplicates and pos > 0:
            # "Replays and duplicates are possible" (GM §3.2): the previous page again.
            chunk = round_.entries[max(0, pos - size) : pos] + chunk
        values: list[dict[str, Any]] = []
        for cid, removed_entry in chunk:
            contact = self.contacts.get(cid)
            if removed_entry or contact is None or contact.folder != folder:
                # PR §5.3 point 3: {"id", "@removed": {"reason"}}.
                values.append(
                    {
                        "@odata.type": "#microsoft.graph.contact",
                        "id": cid,
                        "@removed": {"reason": self.removed_reason},
                    }
                )
            elif self.partial_updates and round_.since and contact.born <= round_.since:
                # "Updated instances are represented by their id with at least the
                # properties that have been updated" (DOC delta-query-overview, "Resource
                # representation in the delta query response"): the properties changed
                # since the token, not the whole contact.
                partial: dict[str, Any] = {"@odata.type": "#microsoft.graph.contact"}
                if self.odata_etags:
                    partial["@odata.etag"] = contact.etag
                partial["id"] = contact.id
                for name, at in contact.changed_at.items():
                    if at > round_.since and name in contact.props:
                        partial[name] = contact.props[name]
                values.append(partial)
            else:
                values.append(self._render(contact, round_.select))
        end = pos + size
        if end < len(round_.entries):
            return self._page(base, values, self._next_skip(round_id, end))
        del self._rounds[round_id]
        token = secrets.token_urlsafe(18)
        self._delta[token] = _DeltaToken(folder, round_.high, round_.select, self.generation)
        return self._page(base, values, None, base + "?$deltatoken=" + token)

    def _next_skip(self, round_id: str, pos: int) -> str:
        token = secrets.token_urlsafe(18)
        self._skip[token] = (round_id, pos)
        return token

    def _page(
        self, base: str, values: list[dict[str, Any]], skip: str | None, delta: str | None = None
    ) -> Response:
        page: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#Collection(contact)",
        }
        if skip is not None:
            page["@odata.nextLink"] = base + "?$skiptoken=" + skip
        else:
            page["@odata.deltaLink"] = delta
        page["value"] = values
        return _json(page)

    def _reset(self, base: str) -> GraphError:
        # GM §3.2 "Reset": 410 with a Location header to start over; the body's code is
        # SyncStateNotFound (capital S) in the wild, syncStateNotFound in the doc.
        return GraphError(
            self.reset_status,
            self.reset_code,
            "The sync state generation is not found; generation=149;[highest=157][157][155][156].",
            {"Location": base + "?$deltatoken="},
        )


def _addresses_stored(body: dict[str, Any]) -> dict[str, Any]:
    """Physical addresses as Graph answers them: the parts with a value only, ``{}`` for an
    address with none (DOC contact-get and contact-update examples: ``"otherAddress": {}``, a
    ``homeAddress`` without ``countryOrRegion``)."""
    out = dict(body)
    for name in ADDRESSES:
        value = out.get(name)
        if isinstance(value, dict):
            out[name] = {k: v for k, v in value.items() if v not in (None, "")}
    return out


def _refuse_read_only(body: dict[str, Any]) -> None:
    """A request body is a contact's writable properties only: DOC resources/contact calls
    id, changeKey, createdDateTime, lastModifiedDateTime and parentFolderId read-only, and
    an annotation such as ``@odata.etag`` is the server's to give (OData JSON format
    4.01, "Control information": a client sends none but ``@odata.type`` and
    ``@odata.bind``). Refused rather than ignored, so that a client sending back what it
    read is caught; a Graph that ignores them is the lenient case."""
    for name in body:
        if name in READ_ONLY or (name.startswith("@") and name != "@odata.type"):
            raise GraphError(
                400,
                "ErrorInvalidProperty",
                f"The property '{name}' is read-only and cannot be set.",
            )


def _writable(body: dict[str, Any]) -> dict[str, Any]:
    # Read-only properties and annotations sent back are ignored, as Graph does.
    return {k: v for k, v in body.items() if k not in READ_ONLY and not k.startswith("@")}


def _round_generation(round_id: str) -> int:
    return int(round_id.split(".", 1)[0])


def _select(query: dict[str, str]) -> tuple[str, ...] | None:
    value = query.get("$select")
    if not value:
        return None
    return tuple(s.strip() for s in value.split(",") if s.strip())


def _int(value: str | None, default: int, cap: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise GraphError(400, "BadRequest", f"Invalid value '{value}' for a query option.")
    return min(int(value), cap)


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=JSON)


_ID = re.compile(r"^[A-Za-z0-9_+/-]{16,}={0,2}$")


def _well_formed(item_id: str) -> None:
    """An id that cannot be an Outlook item's or folder's (Exchange ids are base64 of a
    binary entry id) is a 400 ErrorInvalidIdMalformed "Id is malformed.", not a 404
    (invictus-ir/Microsoft-Extractor-Suite#146: "Id is malformed. Status: 400 (BadRequest)
    ErrorCode: ErrorInvalidIdMalformed"); a well-formed id of nothing is the 404."""
    if not _ID.match(item_id):
        raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")


def _not_found(message: str) -> GraphError:
    return GraphError(404, "ErrorItemNotFound", message)


def _bad_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _method() -> GraphError:
    return GraphError(
        405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
    )


def _oauth_error(status: int, error: str, code: int, description: str) -> Response:
    # GM §3.2: the body of a failed token request (Azure/azure-cli#14244).
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return Response(
        orjson.dumps(
            {
                "error": error,
                "error_description": f"{description}\r\nTrace ID: {trace}\r\n"
                f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": str(trace),
                "correlation_id": str(correlation),
                "error_uri": f"https://login.microsoftonline.com/error?code={code}",
            }
        ),
        status_code=status,
        media_type="application/json",
    )
