"""The only door to MLflow: entities and tag names, the client wrapper, bulk reads, the lock."""
