"""Who may touch what: IAM policies and MLflow registry grants, generated from the environments.

Two mechanisms enforce the promise that data scientists never need, nor have, access to prod:

- IAM (the platform team attaches the documents `promote access` prints): the data-scientist
  role reads and writes dev data and dev artifacts, reads the model artifacts above dev, and is
  explicitly denied reading data above dev and writing any artifact store above dev. Each
  environment's CI role reads its own data and the artifacts of the environment it promotes
  from, and writes its own artifact store; nothing grants deletes of artifacts (versions are
  immutable).
- MLflow basic-auth permissions (`promote access --apply` grants them): data scientists READ on
  every registered model above dev and EDIT on dev's; each environment's CI user MANAGE on its
  own models and experiment. MLflow grants are per model name (no prefix wildcard), so the
  grants are recomputed from the registry's current models on every run.

`preflight` proves, before apply writes anything, that the credentials it runs with can read
the environment's data and write its artifact store; a data scientist running `promote apply
--env prod` stops there with one line and no write anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promote.access.iam import ci_policy, data_scientist_policy
from promote.errors import InputError
from promote.manifests.repository import Repository
from promote.manifests.schema import EnvironmentConfig
from promote.registry.entities import experiment_name
from promote.registry.permissions import grant_permissions

if TYPE_CHECKING:
    from promote.registry.client import Registry

DEFAULT_DATA_SCIENTIST_ROLE = "data-scientist"

DEFAULT_DATA_SCIENTIST_USER = "data-scientist"

DEFAULT_CI_TEMPLATE = "promote-ci-{env}"

# The server-wide default the generated basic_auth.ini recommends: every authenticated user may
# read, nobody may write what they did not create or were not granted.
RECOMMENDED_DEFAULT_PERMISSION = "READ"


READ, EDIT, MANAGE = "READ", "EDIT", "MANAGE"


@dataclass(frozen=True)
class Principals:
    """Who access is generated for: the data-scientist role and users, CI per environment."""

    data_scientist_role: str = DEFAULT_DATA_SCIENTIST_ROLE
    data_scientists: tuple[str, ...] = (DEFAULT_DATA_SCIENTIST_USER,)
    ci_user_template: str = DEFAULT_CI_TEMPLATE

    def ci_user(self, environment: str) -> str:
        return self.ci_user_template.replace("{env}", environment)

    @staticmethod
    def ci_role(config: EnvironmentConfig) -> str:
        return config.role or DEFAULT_CI_TEMPLATE.format(env=config.name)


@dataclass(frozen=True)
class Grant:
    """One MLflow permission: `user` gets `permission` on one registered model or experiment."""

    user: str
    resource_type: str  # "registered_model" or "experiment"
    resource_id: str  # model name, or experiment id
    permission: str
    label: str  # what the grant is on, for people (an experiment's name, not its id)

    def to_json(self) -> dict[str, str]:
        return self.__dict__.copy()


@dataclass
class AccessPlan:
    """Everything `promote access` prints: IAM documents, MLflow grants, the server setting."""

    data_scientist_role: str
    data_scientist_policy: dict[str, Any]
    ci_roles: dict[str, str] = field(default_factory=dict)
    ci_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    not_governed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "iam": {
                "data_scientist": {
                    "role": self.data_scientist_role,
                    "policy": self.data_scientist_policy,
                },
                "ci": {
                    env: {"role": self.ci_roles[env], "policy": policy}
                    for env, policy in self.ci_policies.items()
                },
            },
            "mlflow": {
                "basic_auth_ini": {"default_permission": RECOMMENDED_DEFAULT_PERMISSION},
                "grants": [g.to_json() for g in self.grants],
            },
            "not_governed_by_iam": self.not_governed,
        }


def _name_pattern(template: str, environment: str) -> re.Pattern[str]:
    """A regex matching registered names made from `template` for one environment."""
    escaped = re.escape(template)
    escaped = escaped.replace(re.escape("{env}"), re.escape(environment))
    return re.compile("^" + escaped.replace(re.escape("{model}"), ".+") + "$")


def compute_grants(
    repo: Repository,
    principals: Principals,
    model_names: Iterable[str],
    experiments: dict[str, str],
) -> list[Grant]:
    """Grants for every registered model and `promote/<env>` experiment that exists now.

    `experiments` maps experiment name to id. Data scientists get EDIT in environments that
    promote from none (dev), READ above; each CI user MANAGE on its environment and READ on the
    environment it promotes from (its source versions and their lineage).
    """
    names = sorted(set(model_names))
    grants: list[Grant] = []
    for config in repo.ordered_environments():
        pattern = _name_pattern(config.model_name, config.name)
        resources = [("registered_model", name, name) for name in names if pattern.match(name)]
        experiment = experiment_name(config.name)
        if experiment in experiments:
            resources.append(("experiment", experiments[experiment], experiment))
        scientists = EDIT if config.promotes_from is None else READ
        downstream = [e for e in repo.environments.values() if e.promotes_from == config.name]
        for resource_type, resource_id, label in resources:
            for user in principals.data_scientists:
                grants.append(Grant(user, resource_type, resource_id, scientists, label))
            grants.append(
                Grant(principals.ci_user(config.name), resource_type, resource_id, MANAGE, label)
            )
            for below in downstream:
                grants.append(
                    Grant(principals.ci_user(below.name), resource_type, resource_id, READ, label)
                )
    return grants


def plan(repo: Repository, principals: Principals, registry: Registry | None) -> AccessPlan:
    """IAM documents from the environment files; MLflow grants from the registry's models."""
    result = AccessPlan(principals.data_scientist_role, data_scientist_policy(repo))
    for config in repo.ordered_environments():
        result.ci_roles[config.name] = principals.ci_role(config)
        result.ci_policies[config.name] = ci_policy(repo, config)
        for what, uri in (("data_root", config.data_root), ("artifact_root", config.artifact_root)):
            if not (uri or "").startswith("s3://"):
                result.not_governed.append(f"{config.name}.{what}: {uri or 'default local store'}")
    if registry is not None:
        experiments = {
            name: found.experiment_id
            for name, found in registry.experiments(repo.environments).items()
        }
        result.grants = compute_grants(repo, principals, registry.names(), experiments)
    return result


def apply_grants(tracking_uri: str, grants: list[Grant]) -> None:
    """Grant each permission on an MLflow server running with `--app-name basic-auth`.

    Runs with an admin's MLFLOW_TRACKING_USERNAME/PASSWORD. An existing grant on the same
    resource is replaced, so a model someone created by hand (its creator got MANAGE) is
    brought back to what this plan says.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        raise InputError(
            "--registry", None, "granting permissions needs an MLflow server (http:// or https://)"
        )
    grant_permissions(tracking_uri, grants)


def render(access: AccessPlan) -> str:
    """The plan as text: the IAM documents as JSON, the grants as a list."""
    lines = [f"# IAM policy for the data-scientist role ({access.data_scientist_role})"]
    lines.append(json.dumps(access.data_scientist_policy, indent=2))
    for env, policy in access.ci_policies.items():
        lines.append(f"# IAM policy for {env}'s CI role ({access.ci_roles[env]})")
        lines.append(json.dumps(policy, indent=2))
    lines.append(f"# MLflow basic_auth.ini: default_permission = {RECOMMENDED_DEFAULT_PERMISSION}")
    lines.append(f"# MLflow grants ({len(access.grants)})")
    lines += [f"{g.user}: {g.permission} on {g.resource_type} {g.label}" for g in access.grants]
    if access.not_governed:
        lines.append("# Local stores, not governed by IAM: " + "; ".join(access.not_governed))
    return "\n".join(lines)
