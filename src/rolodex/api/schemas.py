"""Pydantic models that describe the wire format in OpenAPI.

They document; they do not serialise. Responses are the stored documents (see DESIGN.md,
storage decisions) and request bodies are parsed leniently by ``rolodex.domain.wire``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Email(BaseModel):
    type: str | None = Field(None, examples=["work"], description="work, personal, or any string")
    email: str = Field(examples=["swag@nylas.com"])


class IMAddress(BaseModel):
    type: str | None = Field(None, examples=["aim"])
    im_address: str


class PhoneNumber(BaseModel):
    type: str | None = Field(None, examples=["business"])
    number: str = Field(examples=["1 800 123 4567"])


class WebPage(BaseModel):
    type: str | None = Field(None, examples=["homepage"])
    url: str


class PhysicalAddress(BaseModel):
    type: str | None = Field(None, examples=["work"])
    format: Literal["structured"] = "structured"
    street_address: str | None = None
    city: str | None = None
    postal_code: str | None = None
    state: str | None = None
    country: str | None = None


class ContactGroup(BaseModel):
    id: str
    object: Literal["contact_group"] = "contact_group"
    account_id: str
    name: str = Field(examples=["Work"])
    path: str = Field(examples=["Contacts/Work"])


class _ContactFields(BaseModel):
    given_name: str | None = None
    middle_name: str | None = None
    surname: str | None = None
    suffix: str | None = None
    nickname: str | None = None
    birthday: str | None = Field(None, description="YYYY-MM-DD", examples=["2011-01-01"])
    company_name: str | None = None
    job_title: str | None = None
    manager_name: str | None = None
    office_location: str | None = None
    notes: str | None = None
    emails: list[Email] = []
    im_addresses: list[IMAddress] = []
    phone_numbers: list[PhoneNumber] = []
    physical_addresses: list[PhysicalAddress] = []
    web_pages: list[WebPage] = []


class Contact(_ContactFields):
    id: str
    object: Literal["contact"] = "contact"
    account_id: str
    groups: list[ContactGroup] = []
    picture_url: str | None = Field(
        None, description="Absolute URL of GET /contacts/{id}/picture, or null"
    )
    source: str = "address_book"


class ContactWrite(_ContactFields):
    """Every key is optional. Read-only and unknown keys are ignored, "" means empty, and a
    PUT keeps the fields it omits."""

    group: str | None = Field(None, description="A contact group id to put the contact in")


class GroupWrite(BaseModel):
    name: str = Field(examples=["Friends"])


class Count(BaseModel):
    count: int


class Error(BaseModel):
    message: str
    type: str = Field(examples=["invalid_request_error"])


class Violation(BaseModel):
    field: str
    rule: str
    message: str


class ValidationError(Error):
    violations: list[Violation] = []


class Account(BaseModel):
    id: str
    object: Literal["account"] = "account"
    account_id: str
    name: str
    email_address: str
    provider: str = Field(examples=["local", "google", "microsoft", "exchange", "carddav"])
    organization_unit: str = Field(examples=["label", "folder"])
    sync_state: str = Field(examples=["running", "invalid-credentials", "sync-error"])
    linked_at: int
    sandbox: bool = Field(description="Contacts live only in Rolodex under the provider's rules")
    last_synced_at: int | None = None
    last_error: str | None = None


REQUEST_SCHEMAS: tuple[type[BaseModel], ...] = (ContactWrite, GroupWrite)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ValidationError, "description": "Invalid request"},
    401: {"model": Error, "description": "Missing or unknown access token"},
    404: {"model": Error, "description": "No such object in this account"},
    413: {"model": Error, "description": "Request body too large"},
}
# Writes: also refused while the provider refuses the account's credentials.
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": Error, "description": "The account must be connected again"},
}


def json_body(schema: type[BaseModel]) -> dict[str, object]:
    """OpenAPI ``requestBody`` for routes that parse their own body."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema.__name__}"}}
            },
        }
    }
