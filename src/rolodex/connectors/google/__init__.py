"""Google Contacts through the People API v1."""
