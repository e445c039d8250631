"""Microsoft 365 and Outlook.com contacts through Microsoft Graph v1.0."""
