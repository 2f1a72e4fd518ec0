"""The moto server on loopback as AWS clients find it: its endpoint and test credentials."""

from __future__ import annotations


def moto_environment(endpoint: str) -> dict[str, str | None]:
    """Environment variables (for `support.processes.Environ`) that send every AWS client, here
    and in training subprocesses, to the moto server at `endpoint` with test credentials, and
    leave out whatever profile or session the machine has."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
    }
