"""GitHub: the REST client, the Actions context, approval, and the markdown reports."""
