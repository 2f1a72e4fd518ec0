"""MLflow permissions on a server running `--app-name basic-auth`, granted through its auth API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from promote.errors import ExternalError
from promote.registry.loading import import_mlflow


class Permission(Protocol):
    """One grant: `user` gets `permission` on one registered model or experiment."""

    @property
    def user(self) -> str: ...
    @property
    def resource_type(self) -> str: ...
    @property
    def resource_id(self) -> str: ...
    @property
    def permission(self) -> str: ...
    @property
    def label(self) -> str: ...


def grant_permissions(tracking_uri: str, grants: Sequence[Permission]) -> None:
    """Grant each permission, replacing an existing grant on the same resource."""
    import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    client = AuthServiceClient(tracking_uri)
    users = {grant.user for grant in grants}
    for user in sorted(users):
        try:
            client.get_user(user)
        except MlflowException as exc:
            raise ExternalError(
                f"registry: user {user!r} cannot be read on {tracking_uri} "
                f"({exc.error_code}): create it, and run this as an admin"
            ) from None
    for grant in grants:
        args = (grant.user, grant.resource_type, grant.resource_id)
        try:
            try:
                client.grant_user_permission(*args, grant.permission)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                client.revoke_user_permission(*args)
                client.grant_user_permission(*args, grant.permission)
        except MlflowException as exc:
            raise ExternalError(
                f"registry: granting {grant.permission} on {grant.label} to {grant.user} failed: "
                f"{exc.message.splitlines()[0]}"
            ) from None
