"""Hosted sign-in: the application's registered redirect URIs, the sign-ins in progress."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from rolodex.store.contacts import storable
from rolodex.store.schema import redirect_uris, sign_ins


class RedirectUriRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, client_id: str, uri: str, now: float) -> bool:
        """Register ``uri``; False when it was registered already."""
        if self.has(client_id, uri):
            return False
        self.conn.execute(
            insert(redirect_uris).values(client_id=client_id, uri=uri, created_at=now)
        )
        return True

    def remove(self, client_id: str, uri: str) -> bool:
        done = self.conn.execute(
            delete(redirect_uris).where(
                redirect_uris.c.client_id == client_id, redirect_uris.c.uri == uri
            )
        )
        return done.rowcount > 0

    def has(self, client_id: str, uri: str) -> bool:
        if not (storable(client_id) and storable(uri)):
            return False  # PostgreSQL text holds no NUL: binding one is an error, not a miss
        found = self.conn.execute(
            select(redirect_uris.c.uri).where(
                redirect_uris.c.client_id == client_id, redirect_uris.c.uri == uri
            )
        ).first()
        return found is not None

    def all(self, client_id: str) -> list[str]:
        return list(
            self.conn.execute(
                select(redirect_uris.c.uri)
                .where(redirect_uris.c.client_id == client_id)
                .order_by(redirect_uris.c.created_at, redirect_uris.c.uri)
            ).scalars()
        )


class SignInRepository:
    """Sign-ins in progress, by the hash of their key; each is bound to the browser that
    started it (the hash of its cookie)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def put(
        self,
        key_hash: str,
        client_id: str,
        browser_hash: str,
        payload: bytes,
        expires_at: float,
        now: float,
    ) -> None:
        # Expired sign-ins go as new ones come: the table holds only live ones and a few.
        self.conn.execute(delete(sign_ins).where(sign_ins.c.expires_at <= now))
        self.conn.execute(
            insert(sign_ins).values(
                key_hash=key_hash,
                client_id=client_id,
                browser_hash=browser_hash,
                payload=payload,
                expires_at=expires_at,
            )
        )

    def get(self, key_hash: str, browser_hash: str, now: float) -> bytes | None:
        """The sign-in's payload if it exists, has not expired, and is this browser's."""
        payload: bytes | None = self.conn.execute(
            select(sign_ins.c.payload).where(
                sign_ins.c.key_hash == key_hash,
                sign_ins.c.browser_hash == browser_hash,
                sign_ins.c.expires_at > now,
            )
        ).scalar_one_or_none()
        return payload

    def update(self, key_hash: str, payload: bytes) -> None:
        self.conn.execute(
            update(sign_ins).where(sign_ins.c.key_hash == key_hash).values(payload=payload)
        )

    def finish(self, key_hash: str) -> bool:
        """Delete the sign-in; False when it was gone already (finished by a concurrent
        request): only one request finishes a sign-in."""
        return (
            self.conn.execute(delete(sign_ins).where(sign_ins.c.key_hash == key_hash)).rowcount > 0
        )
