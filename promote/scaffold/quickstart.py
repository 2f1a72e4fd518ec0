"""`promote quickstart DIR`: a sandbox GitOps repository and the whole story, run on it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import yaml

from promote.build import git
from promote.errors import InputError
from promote.proof import keys

EXAMPLE_MODEL = "churn"
ENTRYPOINT = f"models/{EXAMPLE_MODEL}/train.py"
PINNED_LIBRARIES = ("scikit-learn", "pandas", "numpy", "mlflow")


@dataclass(frozen=True)
class Sandbox:
    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    def data(self, environment: str) -> Path:
        return self.root / "data" / environment / EXAMPLE_MODEL


def _environment_files() -> dict[str, dict[str, object]]:
    """Environment-wide gates hold for every model; metric gates live in each model's manifest.

    The sandbox keeps each environment's data beside the repository, as separate stores would
    be: outside it, which an environment must allow explicitly.
    """
    budget = {"max_artifact_mb": 50}
    outside = {"allow_data_outside_repository": True}
    return {
        "dev": {"name": "dev", "data_root": "../data/dev", **outside, "training": "retrain"},
        "staging": {
            "name": "staging",
            "promotes_from": "dev",
            "data_root": "../data/staging",
            **outside,
            "training": "retrain",
            "gates": budget,
        },
        "prod": {
            "name": "prod",
            "promotes_from": "staging",
            "data_root": "../data/prod",
            **outside,
            "training": "retrain",
            "gates": budget,
        },
    }


DEV_MANIFEST = {
    "model": EXAMPLE_MODEL,
    "code": {"entrypoint": ENTRYPOINT, "params": {"C": 0.5, "max_iter": 300}},
    "data": {"path": EXAMPLE_MODEL},
    "gates": {
        "metrics": {"roc_auc": {"min": 0.65}, "accuracy": {"min": 0.6}},
        "no_regression": {"metric": "roc_auc", "tolerance": 0.03},
    },
}


def pinned_requirements() -> str:
    """What the example models import, pinned to what is installed: a rebuild enforces it."""
    return "".join(f"{name}=={metadata.version(name)}\n" for name in PINNED_LIBRARIES)


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (PEM keys) as literal blocks, readable in a diff."""


_LiteralDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def dump_yaml(body: object) -> str:
    return yaml.dump(body, Dumper=_LiteralDumper, sort_keys=False)


def add_public_key(environment_yaml: Path, public: str) -> None:
    """List one more public key in an environment file; the rest of the file stays as written
    (its comments included): only its `signing` block is rewritten, at the end."""
    text = environment_yaml.read_text(encoding="utf-8")
    signing = dict((yaml.safe_load(text) or {}).get("signing") or {})
    signing["public_keys"] = [*(signing.get("public_keys") or []), public]
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("signing:")), len(lines))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "\n", "#", "-")),
        len(lines),
    )
    kept = "".join(lines[:start] + lines[end:]).rstrip("\n")
    environment_yaml.write_text(f"{kept}\n{dump_yaml({'signing': signing})}", encoding="utf-8")


def create_sandbox(root: Path) -> Sandbox:
    """A git repository with the example model, manifests, and per-environment data beside it."""
    from promote.scaffold.example.churn.data import write_environment_data

    if root.exists() and any(root.iterdir()):
        raise InputError(str(root), None, "exists and is not empty: choose a new folder")
    sandbox = Sandbox(root.resolve())
    repo = sandbox.repo
    example = resources.files("promote.scaffold.example") / EXAMPLE_MODEL
    (repo / "models" / EXAMPLE_MODEL).mkdir(parents=True)
    (repo / ENTRYPOINT).write_text(
        example.joinpath("train.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (repo / "models" / EXAMPLE_MODEL / "requirements.txt").write_text(
        pinned_requirements(), encoding="utf-8"
    )
    for name, body in _environment_files().items():
        folder = repo / "environments" / name
        folder.mkdir(parents=True)
        # Each environment's own signing key: the private half stays in the key folder.
        public, _ = keys.generate()
        body["signing"] = {"public_keys": [public]}
        (folder / "environment.yaml").write_text(dump_yaml(body), encoding="utf-8")
        write_environment_data(sandbox.data(name), name)
    (repo / "environments" / "dev" / f"{EXAMPLE_MODEL}.yaml").write_text(
        yaml.safe_dump(DEV_MANIFEST, sort_keys=False), encoding="utf-8"
    )
    (repo / ".gitignore").write_text(".promote/\n__pycache__/\n", encoding="utf-8")
    git.init_repository(repo, "main", "Churn model and environments")
    return sandbox


def merge(repo: Path, branch: str, title: str) -> None:
    """What an approved pull request's merge does to main."""
    git.run_git(
        repo, "merge", "--quiet", "--no-ff", "-m", title, branch, env=git.identity_env(repo)
    )


def run_story(root: Path, say: Callable[[str], None]) -> Sandbox:
    from promote import plan
    from promote.apply import Pipeline
    from promote.manifests.loader import load_repository
    from promote.propose import propose
    from promote.registry.client import Registry
    from promote.train import train

    sandbox = create_sandbox(root)
    repo_root = sandbox.repo
    registry = Registry.for_repository(repo_root)
    say(f"1. sandbox: git repository {repo_root}, data under {sandbox.root / 'data'}")

    def pipeline() -> Pipeline:
        return Pipeline(load_repository(repo_root), registry, report=lambda line: say(f"   {line}"))

    say("2. promote train churn --env dev")
    trained = train(
        load_repository(repo_root),
        registry,
        EXAMPLE_MODEL,
        "dev",
        {},
        lambda line: say(f"   {line}"),
    )
    say(f"   dev.churn v{trained.version}: {trained.detail}")
    for step, target in ((3, "staging"), (5, "prod")):
        say(f"{step}. promote model churn --to {target}")
        proposal = propose(load_repository(repo_root), registry, EXAMPLE_MODEL, target)
        say(f"   wrote {proposal.path} on branch {proposal.branch} (source {proposal.source_ref})")
        say("   the pull request is reviewed, approved and merged into main")
        assert proposal.branch is not None
        merge(repo_root, proposal.branch, f"Merge {proposal.branch}")
        say(f"{step + 1}. promote apply --env {target}")
        result = pipeline().apply(target)
        for outcome in result.outcomes:
            say(f"   {outcome.environment}.{outcome.model}: {outcome.action} -> {outcome.detail}")
    say("7. promote status")
    for state in plan.compute(load_repository(repo_root), registry):
        say(f"   {state.environment:8} {state.model:8} {state.status:8} champion v{state.champion}")
    say(f"Explore: cd {repo_root} && promote status && promote history churn --env prod")
    shutil.rmtree(repo_root / "__pycache__", ignore_errors=True)
    return sandbox
