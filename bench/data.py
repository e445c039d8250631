"""Deterministic, realistic contacts for one account, bulk-loaded through the store.

Contact ``i`` of a dataset is a pure function of ``(seed, i)``: the loader and the
benchmarks (which need probe values: an email, a phone number, an id that exist) derive the
same contact without reading it back. Documents are rendered with
``rolodex.domain.wire.contact_document`` and indexed with ``rolodex.domain.normalize``, and
rows go in through ``ContactRepository.insert_many`` and ``AccountRepository.allocate``, so
the stored bytes are exactly what the API would have written.

Datasets are cached: one SQLite file per seed and schema under ``bench/.cache/`` (and one
PostgreSQL database), holding one account per size. An account is complete when its
maintained contact count equals its size; a partial one (an interrupted load) is dropped
and rebuilt.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from rolodex.config import Settings
from rolodex.domain.account import Account
from rolodex.domain.contact import (
    Contact,
    ContactFields,
    Email,
    Group,
    PhoneNumber,
    PhysicalAddress,
    Picture,
    WebPage,
)
from rolodex.domain.normalize import index_terms, phone_query_term, phone_terms
from rolodex.domain.wire import contact_document
from rolodex.service.accounts import AccountService
from rolodex.store import Store, Tx
from rolodex.store.contacts import NewContact
from rolodex.store.database import bulk_write_connection, ensure_database

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
DEFAULT_SEED = 20240501
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/rolodex_bench"
BATCH = 5000
LOAD_TRANSACTION = 250_000
GROUP_NAMES = (
    "Family",
    "Friends",
    "Work",
    "Clients",
    "Suppliers",
    "Book club",
    "Climbing",
    "School",
    "Neighbours",
    "Conference 2023",
)
PICTURE_EVERY = 250  # "a few pictures": one contact in 250
_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)

GIVEN = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Chen",
    "Wei",
    "Aiko",
    "Hiroshi",
    "Sofia",
    "Mateo",
    "Lucia",
    "Hugo",
    "Emma",
    "Louis",
    "Lea",
    "Lukas",
    "Mia",
    "Noah",
    "Olivia",
    "Amara",
    "Kwame",
    "Fatima",
    "Omar",
    "Ingrid",
    "Lars",
    "Siobhan",
    "Niamh",
    "Priya",
    "Arjun",
    "Zoe",
    "Ana",
    "Jose",
    "Nikolai",
    "Olga",
    "Yusuf",
    "Elif",
    "Rafael",
    "Beatriz",
]
SURNAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Kim",
    "Tanaka",
    "Suzuki",
    "Muller",
    "Schmidt",
    "Schneider",
    "Dubois",
    "Lefebvre",
    "Rossi",
    "Russo",
    "Kowalski",
    "Nowak",
    "Silva",
    "Santos",
    "Oliveira",
    "Okafor",
    "Mensah",
    "Johansson",
    "Nielsen",
    "O'Brien",
    "Murphy",
    "Patel",
    "Shah",
]
COMPANIES = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Industries",
    "Soylent",
    "Tyrell Systems",
    None,
    None,
)
TITLES = ("Engineer", "Account Manager", "Director", "Designer", "CFO", "Nurse", "Teacher", None)
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "fastmail.com", "proton.me")
STREETS = ("Main St", "Oak Ave", "Market St", "High Street", "Rue de Rivoli", "Hauptstrasse")
CITIES = (
    ("San Francisco", "CA", "94103", "US"),
    ("New York", "NY", "10001", "US"),
    ("Austin", "TX", "78701", "US"),
    ("London", None, "EC1A 1BB", "GB"),
    ("Paris", None, "75001", "FR"),
    ("Berlin", None, "10115", "DE"),
    ("Toronto", "ON", "M5H 2N2", "CA"),
)
NOTES = (
    "Met at the spring conference; follow up about the proposal.",
    "Prefers email over phone. Allergic to peanuts.",
    "Old friend from university.\nBirthday party every June.",
    "Referred by Sam. Interested in the enterprise plan.",
)
AREA_CODES = ("212", "415", "312", "617", "206", "303", "512", "702", "646", "213")
ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _phone(rng: random.Random) -> str:
    kind = rng.randrange(8)
    area = rng.choice(AREA_CODES)
    exchange = rng.randrange(201, 990)
    line = rng.randrange(10000)
    if kind == 0:
        return f"+1 ({area}) {exchange}-{line:04d}"
    if kind == 1:
        return f"{area}-{exchange}-{line:04d}"
    if kind == 2:
        return f"({area}) {exchange} {line:04d}"
    if kind == 3:
        return f"+1{area}{exchange}{line:04d}"
    if kind == 4:
        return f"{area}.{exchange}.{line:04d}"
    if kind == 5:
        return f"+44 20 {rng.randrange(7000, 8000)} {line:04d}"
    if kind == 6:
        return f"+49 30 {rng.randrange(1000000, 9999999)}"
    return (
        f"+33 1 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {line // 100:02d} {line % 100:02d}"
    )


@dataclass(frozen=True)
class Generated:
    contact: Contact
    doc: bytes
    terms: frozenset[tuple[str, str]]
    picture: bool


def _base36(n: int) -> str:
    out = []
    for _ in range(25):
        n, r = divmod(n, 36)
        out.append(ID_ALPHABET[r])
    return "".join(out)


def group_id(seed: int, size: int, index: int) -> str:
    digest = hashlib.sha256(f"group:{seed}:{size}:{index}".encode()).digest()
    return "".join(ID_ALPHABET[b % 36] for b in digest[:25])


def generate(seed: int, size: int, index: int, account_id: str) -> Generated:
    """Contact ``index`` of the dataset (seed, size): always the same."""
    rng = random.Random(seed * 1_000_003 + index)
    given = rng.choice(GIVEN)
    surname = rng.choice(SURNAMES)
    company = rng.choice(COMPANIES)
    slug = f"{given}.{surname}".lower().replace("'", "")
    emails = [Email("personal", f"{slug}{index}@{rng.choice(DOMAINS)}")]
    for _ in range(rng.randrange(3)):
        if company:
            host = company.lower().replace(" ", "") + ".com"
            emails.append(Email("work", f"{given[0].lower()}{surname.lower()}{index}@{host}"))
        else:
            emails.append(Email(None, f"{slug}.{rng.randrange(10**6)}@{rng.choice(DOMAINS)}"))
    phone_types = ("mobile", "home", "business", None)
    phones = [PhoneNumber(rng.choice(phone_types), _phone(rng)) for _ in range(rng.randrange(1, 4))]
    addresses: list[PhysicalAddress] = []
    for _ in range(rng.choice((0, 1, 1, 2))):
        city, state, postal, country = rng.choice(CITIES)
        addresses.append(
            PhysicalAddress(
                rng.choice(("home", "work")),
                street_address=f"{rng.randrange(1, 2000)} {rng.choice(STREETS)}",
                city=city,
                postal_code=postal,
                state=state,
                country=country,
            )
        )
    fields = ContactFields(
        given_name=given,
        middle_name=rng.choice(GIVEN) if rng.random() < 0.15 else None,
        surname=surname,
        nickname=given[:3] if rng.random() < 0.1 else None,
        company_name=company,
        job_title=rng.choice(TITLES) if company else None,
        notes=rng.choice(NOTES) if rng.random() < 0.2 else None,
        emails=tuple(emails),
        phone_numbers=tuple(phones),
        physical_addresses=tuple(addresses),
        web_pages=(WebPage("profile", f"https://example.com/{slug}{index}"),)
        if rng.random() < 0.1
        else (),
    )
    groups: tuple[str, ...] = ()
    if rng.random() < 0.4:
        picks = rng.sample(range(len(GROUP_NAMES)), rng.choice((1, 1, 2)))
        groups = tuple(group_id(seed, size, g) for g in picks)
    contact_id = _base36(rng.getrandbits(129))
    picture = index % PICTURE_EVERY == 7
    contact = Contact(
        id=contact_id,
        account_id=account_id,
        fields=fields,
        group_ids=groups,
        has_picture=picture,
    )
    terms = index_terms(dataclasses.replace(fields, phone_numbers=()))
    for phone in phones:
        terms.update(("phone", t) for t in _phone_terms(phone.number, rng))
    return Generated(contact, b"", frozenset(terms), picture)


# phonenumbers takes ~0.25 ms a number, which would make loading a million contacts take
# minutes. Whether a number is valid, and so which of its digit suffixes are index terms,
# depends on its leading digits and length (country code, area code, exchange), so the terms
# are learnt once per (leading digits, length, explicit "+") and checked against the real
# function on a sample; a shape that disagrees is computed for real from then on.
_SHAPES: dict[tuple[str, int, bool], tuple[int, ...] | None] = {}


def _phone_terms(number: str, rng: random.Random) -> set[str]:
    digits = phone_query_term(number)
    key = (digits[:5], len(digits), number.strip().startswith("+"))
    shape = _SHAPES.get(key, ())
    if shape is None or shape == () or rng.random() < 0.02:
        real = phone_terms(number)
        if all(digits.endswith(t) for t in real):
            learnt = tuple(sorted(len(t) for t in real))
            _SHAPES[key] = learnt if shape in ((), learnt) else None
        else:
            _SHAPES[key] = None
        return real
    return {digits[len(digits) - n :] for n in shape}


def _groups(seed: int, size: int, account_id: str) -> dict[str, Group]:
    return {
        group_id(seed, size, i): Group(group_id(seed, size, i), account_id, name, name)
        for i, name in enumerate(GROUP_NAMES)
    }


def _render_chunk(args: tuple[int, int, int, int, str]) -> list[NewContact]:
    seed, size, start, stop, account_id = args
    groups = _groups(seed, size, account_id)
    out = []
    for i in range(start, stop):
        g = generate(seed, size, i, account_id)
        out.append(
            NewContact(
                pk=i + 1,  # rebased on the allocated sequence by the loader
                id=g.contact.id,
                doc=contact_document(g.contact, groups),
                terms=g.terms,
                group_ids=g.contact.group_ids,
            )
        )
    return out


# --- Where datasets live --------------------------------------------------------------------


def schema_key() -> str:
    """Changes when the migrations change, so a cached file never outlives its schema."""
    versions = Path(__file__).resolve().parents[1] / "src/rolodex/store/migrations/versions"
    names = sorted(p.name for p in versions.glob("*.py"))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:8]


def sqlite_url(seed: int = DEFAULT_SEED) -> str:
    CACHE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{CACHE / f'rolodex-s{seed}-{schema_key()}.db'}"


def postgres_url() -> str:
    return os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_available() -> str | None:
    """The PostgreSQL URL if a server answers there (the database is created if missing)."""
    try:
        ensure_database(postgres_url())
    except Exception:
        return None
    return postgres_url()


def backend_url(backend: str, seed: int = DEFAULT_SEED) -> str:
    if backend == "sqlite":
        return sqlite_url(seed)
    return postgres_url()


@dataclass
class Dataset:
    url: str
    backend: str
    seed: int
    size: int
    account: Account
    token: str
    built_seconds: float | None = None  # None: it came from the cache
    groups: list[str] = field(default_factory=list)

    def probe(self, index: int) -> Generated:
        return generate(self.seed, self.size, index, self.account.id)

    def probe_indexes(self, count: int, salt: int = 0) -> list[int]:
        rng = random.Random(self.seed + salt)
        return [rng.randrange(self.size) for _ in range(count)]


def _settings(url: str) -> Settings:
    return Settings(database_url=url, secret_key="u6fB3yQw1mN0rSx8c2Vt7Zp4Hk9Lj5Ga3Ed1Fo6Wq0I=")


def account_email(size: int, seed: int) -> str:
    return f"bench-{size}-s{seed}@bench.invalid"


def dataset(backend: str, size: int, seed: int = DEFAULT_SEED, *, log: bool = True) -> Dataset:
    """The cached account of ``size`` contacts on ``backend``, built if missing."""
    url = backend_url(backend, seed)
    ensure_database(url)
    store = Store(url)
    try:
        store.migrate()
        accounts = AccountService(store)
        email = account_email(size, seed)
        found: Account | None = None
        for account in accounts.list():
            if account.email_address != email:
                continue
            if account.contact_count == size and found is None:
                found = account
            else:
                accounts.delete(account.id)  # an interrupted load: start again
        built: float | None = None
        if found is None:
            started = time.perf_counter()
            if log:
                print(
                    f"  building {backend} dataset: {size:,} contacts (seed {seed})...", flush=True
                )
            found = accounts.create(email, name=f"Bench {size}").account
            load(store, found, seed, size)
            found = accounts.get(found.id)
            _analyze(store, force=True)
            built = time.perf_counter() - started
            if log:
                print(f"  built in {built:.1f}s, cached for the next run", flush=True)
        _analyze(store)
        token = accounts.issue_token(found.id)
        return Dataset(
            url,
            backend,
            seed,
            size,
            found,
            token,
            built,
            [group_id(seed, size, i) for i in range(len(GROUP_NAMES))],
        )
    finally:
        store.close()


def _analyze(store: Store, *, force: bool = False) -> None:
    """Planner statistics after a bulk load on PostgreSQL (after the load, or for a dataset
    never analyzed). Without them (autovacuum may be off, or not have come round yet) the
    planner takes the account's 100,000 rows for a few hundred and sorts them for every
    deep page instead of walking the key index: ~200 ms a page instead of ~10 ms."""
    if store.is_sqlite:
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not force:
            analyzed = conn.exec_driver_sql(
                "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL"
                " FROM pg_stat_user_tables WHERE relname = 'contacts'"
            ).scalar()
            if analyzed:
                return
        conn.exec_driver_sql("VACUUM ANALYZE")


def scratch_account(url: str, name: str) -> tuple[Account, str]:
    """A fresh empty account (for write benchmarks); returns it and its token."""
    store = Store(url)
    try:
        store.migrate()
        created = AccountService(store).create(f"{name}@bench.invalid", name=name)
        return created.account, created.access_token
    finally:
        store.close()


def delete_account(url: str, account_id: str) -> None:
    store = Store(url)
    try:
        AccountService(store).delete(account_id)
    finally:
        store.close()


def _chunks(seed: int, size: int, account_id: str) -> Iterator[tuple[int, int, int, int, str]]:
    for start in range(0, size, BATCH):
        yield (seed, size, start, min(size, start + BATCH), account_id)


def rendered(seed: int, size: int, account_id: str) -> Iterator[list[NewContact]]:
    """The dataset's rows in batches, rendered on every core."""
    workers = max(1, min(4, os.cpu_count() or 1))
    if size <= BATCH or workers == 1:
        for chunk in _chunks(seed, size, account_id):
            yield _render_chunk(chunk)
        return
    with get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_render_chunk, _chunks(seed, size, account_id))


def load(store: Store, account: Account, seed: int, size: int) -> None:
    now = time.time()
    with store.write() as tx:
        for group in _groups(seed, size, account.id).values():
            tx.groups.insert(group, now)
    picture = Picture("image/png", hashlib.sha256(_PIXEL_PNG).hexdigest()[:16], _PIXEL_PNG)
    batches = rendered(seed, size, account.id)
    done = False
    while not done:
        # One transaction per LOAD_TRANSACTION contacts (see bulk_write_connection).
        with bulk_write_connection(store.engine) as conn:
            tx = Tx(conn)
            loaded = 0
            while loaded < LOAD_TRANSACTION:
                batch = next(batches, None)
                if batch is None:
                    done = True
                    break
                first = tx.accounts.allocate(account.id, len(batch))
                start = batch[0].pk
                rows = [dataclasses.replace(c, pk=first + c.pk - start) for c in batch]
                tx.contacts.insert_many(account.id, rows, now)
                for c in rows:
                    if b'"picture_url":"/contacts/' in c.doc:
                        tx.pictures.put(account.id, c.id, picture)
                tx.accounts.add_contacts(account.id, len(rows))
                loaded += len(rows)


def contact_bodies(seed: int, count: int) -> list[dict[str, object]]:
    """POST bodies of ``count`` generated contacts (v2 wire shape, without ids)."""
    import orjson

    out = []
    for i in range(count):
        g = generate(seed, count, i, "x")
        doc = orjson.loads(contact_document(g.contact, {}))
        body = {
            k: v
            for k, v in doc.items()
            if k not in ("id", "object", "account_id", "groups", "picture_url", "source")
        }
        out.append(body)
    return out
