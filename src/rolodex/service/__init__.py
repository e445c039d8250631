"""Use cases: contacts, groups, pictures, accounts. Validation against the account's
provider profile, and the writes that must commit together, live here."""
