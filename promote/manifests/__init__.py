"""Desired state: schemas, the repository of environments and manifests, its loader and cache."""
