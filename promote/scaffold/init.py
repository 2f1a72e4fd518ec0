"""`promote init DIR`: a new GitOps repository rendered from the jinja2 templates.

Environment configs, the plan, apply and watch workflows, CODEOWNERS, an example manifest and a
training stub. The same templates render this repository's own `.github/` files.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from promote import DISTRIBUTION, __version__
from promote.build import git
from promote.errors import InputError
from promote.proof import keys
from promote.scaffold.quickstart import pinned_requirements

ENVIRONMENTS = ("dev", "staging", "prod")
# Actions pinned by full commit sha; the comment names the release the sha was taken from.
PINNED_ACTIONS = {
    "checkout": {"sha": "11bd71901bbe5b1630ceea73d27597364c9af683", "version": "v4.2.2"},
    "setup_python": {"sha": "a26af69be951a213d495a4c3e4e4022e16d87065", "version": "v5.6.0"},
    "aws_credentials": {"sha": "e3dd6a429d7300a6a4c196c26e071d42e0343502", "version": "v4.0.2"},
    "cache": {"sha": "5a3ec84eff668545956fd18022155c47e93e2684", "version": "v4.2.3"},
}
GITHUB_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
TEAM_SLUG = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
ROLE_ARN = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}"
TEMPLATE_FILES = {
    ".github/workflows/promote-plan.yml": "workflows/promote-plan.yml.j2",
    ".github/workflows/promote-apply.yml": "workflows/promote-apply.yml.j2",
    ".github/workflows/promote-watch.yml": "workflows/promote-watch.yml.j2",
    ".github/CODEOWNERS": "CODEOWNERS.j2",
}


def default_promote_requirement() -> str:
    return f"{DISTRIBUTION}=={__version__}"


@dataclass(frozen=True)
class ScaffoldSettings:
    """The inputs of `promote init`; `validated()` refuses anything that would render badly."""

    organisation: str
    approvers_team: str
    registry_uri: str
    data_roots: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    aws_region: str = "us-east-1"
    required_approvals: int = 1
    protected_branch: str = "main"
    model: str = "example"
    # CI sets up exactly the Python that trains dev here: the lineage match compares versions.
    python_version: str = field(default_factory=platform.python_version)
    promote_requirement: str = field(default_factory=default_promote_requirement)
    code_paths: tuple[str, ...] = ("models/**",)
    # owner/name on GitHub: environments under approval then also accept Sigstore keyless
    # signatures of the apply workflow at the protected branch.
    github_repository: str | None = None

    @property
    def team(self) -> str:
        return f"{self.organisation}/{self.approvers_team}"

    def validated(self) -> ScaffoldSettings:
        if not re.fullmatch(GITHUB_NAME, self.organisation):
            raise InputError("--org", None, f"{self.organisation!r} is not a GitHub organisation")
        if not re.fullmatch(TEAM_SLUG, self.approvers_team):
            raise InputError(
                "--approvers-team", None, f"{self.approvers_team!r} is not a team slug"
            )
        if self.github_repository is not None and not re.fullmatch(
            rf"{GITHUB_NAME}/[A-Za-z0-9_.-]{{1,100}}", self.github_repository
        ):
            raise InputError(
                "--github-repository", None, f"{self.github_repository!r} is not owner/name"
            )
        if not self.registry_uri or any(c.isspace() for c in self.registry_uri):
            raise InputError("--registry-uri", None, "give the MLflow tracking URI, no spaces")
        if re.match(r"^[a-z+]+://[^/@]*:[^/@]*@", self.registry_uri):
            raise InputError(
                "--registry-uri",
                None,
                "holds a password: keep credentials in the MLFLOW_TRACKING_USERNAME/PASSWORD "
                "environment secrets, never in the repository",
            )
        for option, values in (("--data-root", self.data_roots), ("--role", self.roles)):
            unknown = sorted(set(values) - set(ENVIRONMENTS))
            if unknown:
                raise InputError(
                    option, None, f"unknown environment {unknown[0]!r} ({', '.join(ENVIRONMENTS)})"
                )
        for name, role in self.roles.items():
            if not re.fullmatch(ROLE_ARN, role):
                raise InputError("--role", None, f"{name}: {role!r} is not an IAM role ARN")
        for name, root in self.data_roots.items():
            foreign_scheme = "://" in root and not root.startswith("s3://")
            if not root or foreign_scheme or any(c.isspace() for c in root):
                raise InputError(
                    "--data-root", None, f"{name}: must be a local folder or an s3:// URI"
                )
        if not re.fullmatch(r"[a-z0-9]{1,20}-[a-z]{2,10}-\d", self.aws_region):
            raise InputError("--aws-region", None, f"{self.aws_region!r} is not an AWS region")
        if self.required_approvals < 1:
            raise InputError("--required-approvals", None, "must be at least 1")
        if not re.fullmatch(r"[A-Za-z0-9._/-]{1,100}", self.protected_branch):
            raise InputError("--branch", None, f"{self.protected_branch!r} is not a branch name")
        # A wheel URL may carry its digest (`...whl#sha256=<hex>`): pip then installs only it.
        if not re.fullmatch(
            r"[-A-Za-z0-9_.=<>!~\[\], +@:/]{1,300}(#sha256=[0-9a-f]{64})?",
            self.promote_requirement,
        ):
            raise InputError("--promote-requirement", None, "is not a pip requirement")
        if not re.fullmatch(r"3\.\d{1,2}(\.\d{1,2})?", self.python_version):
            raise InputError("--python-version", None, f"{self.python_version!r} is not 3.X[.Y]")
        return self

    def context(self) -> dict[str, Any]:
        environments = [
            {
                "name": name,
                "previous": ENVIRONMENTS[index - 1] if index else None,
                "data_root": self.data_roots.get(name, f"data/{name}"),
                "data_outside": _outside_repository(self.data_roots.get(name, f"data/{name}")),
                "role": self.roles.get(name),
                # Everything above dev reaches users' traffic or its rehearsal: approvals apply.
                "approval": index > 0,
            }
            for index, name in enumerate(ENVIRONMENTS)
        ]
        return {
            "environments": environments,
            "actions": PINNED_ACTIONS,
            "codeowner": f"@{self.team}",
            "team": self.team,
            "registry_uri": self.registry_uri,
            "aws_region": self.aws_region,
            "required_approvals": self.required_approvals,
            "protected_branch": self.protected_branch,
            "model": self.model,
            "python_version": self.python_version,
            "promote_requirement": self.promote_requirement,
            "code_paths": list(self.code_paths),
            "keyless_repository": self.github_repository,
        }


def _outside_repository(data_root: str) -> bool:
    """A local data root that leaves the new repository, which its environment must allow."""
    if data_root.startswith("s3://"):
        return False
    path = PurePosixPath(data_root)
    return path.is_absolute() or ".." in path.parts


def _renderer() -> Any:
    """Templates of files that contain GitHub's own `${{ }}` use [[ ]] and [% %] for jinja."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("promote.scaffold", "templates"),
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def render_github_files(settings: ScaffoldSettings) -> dict[str, str]:
    """The workflows and CODEOWNERS, by path: what `promote init` writes under `.github/`."""
    renderer = _renderer()
    context = settings.validated().context()
    return {
        path: renderer.get_template(template).render(context)
        for path, template in TEMPLATE_FILES.items()
    }


def render_repository(settings: ScaffoldSettings, public_keys: dict[str, str]) -> dict[str, str]:
    """Every file of a new GitOps repository, by path; `public_keys` by environment."""
    renderer = _renderer()
    context = settings.validated().context()
    files = render_github_files(settings)
    for env in context["environments"]:
        files[f"environments/{env['name']}/environment.yaml"] = renderer.get_template(
            "environment.yaml.j2"
        ).render({**context, "env": {**env, "public_key": public_keys[env["name"]].strip()}})
    files[f"environments/dev/{settings.model}.yaml"] = renderer.get_template(
        "manifest.yaml.j2"
    ).render(context)
    files[f"models/{settings.model}/train.py"] = renderer.get_template("train.py.j2").render(
        context
    )
    files[".gitignore"] = renderer.get_template("gitignore.j2").render(context)
    files[f"models/{settings.model}/requirements.txt"] = pinned_requirements()
    return files


def init(directory: Path, settings: ScaffoldSettings) -> list[str]:
    """Write a new repository into an empty (or new) `directory`, commit it; the paths written."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(str(directory), None, "exists and is not empty: choose a new folder")
    settings.validated()  # bad input writes nothing, not even a key
    public_keys = {name: keys.generate()[0] for name in ENVIRONMENTS}
    files = render_repository(settings, public_keys)
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    git.init_repository(
        directory, settings.protected_branch, "GitOps repository for promote (promote init)"
    )
    # Sample data under each local data root (ignored by git: data is not code), so the
    # scaffold trains and promotes as it is; each environment's is its own.
    from promote.scaffold.example.churn.data import write_environment_data

    written = sorted(files)
    for env in settings.context()["environments"]:
        if not env["data_root"].startswith("s3://"):
            folder = directory / env["data_root"] / settings.model
            write_environment_data(folder, env["name"])
            written += sorted(str(p.relative_to(directory)) for p in folder.iterdir())
    return written
