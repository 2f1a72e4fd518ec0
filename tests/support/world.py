"""The story's world: a sandbox repository with its registry, and the story's stages saved."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from promote.apply import Pipeline
from promote.build import git
from promote.manifests.loader import load_repository
from promote.propose import propose
from promote.registry.client import Registry
from promote.scaffold.quickstart import Sandbox, create_sandbox, merge
from promote.train import train

MODEL = "churn"


class World:
    """A sandbox repository with its registry, and the steps of the story as methods."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.repo = sandbox.repo
        self.registry = Registry.for_repository(self.repo)
        self.lines: list[str] = []

    def pipeline(self) -> Pipeline:
        return Pipeline(load_repository(self.repo), self.registry, report=self.lines.append)

    def train_dev(self, **overrides: Any) -> int:
        outcome = train(
            load_repository(self.repo), self.registry, MODEL, "dev", overrides, self.lines.append
        )
        assert outcome.ok, outcome.detail
        assert outcome.version is not None
        return outcome.version

    def propose_and_merge(self, target: str) -> None:
        proposal = propose(load_repository(self.repo), self.registry, MODEL, target)
        assert proposal.branch is not None
        merge(self.repo, proposal.branch, f"Merge {proposal.branch}")

    def promote(self, target: str) -> Any:
        self.propose_and_merge(target)
        return self.pipeline().apply(target)

    def edit_yaml(self, relative: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change a YAML file in the repository and commit it on main, as a merged PR would."""
        path = self.repo / relative
        body = yaml.safe_load(path.read_text()) if path.exists() else {}
        change(body)
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        self.commit(f"Edit {relative}")

    def use_s3_artifacts(self, bucket: str) -> None:
        """Every environment stores its artifacts under its own prefix of `bucket`, committed."""
        for env in ("dev", "staging", "prod"):
            self.edit_yaml(
                f"environments/{env}/environment.yaml",
                lambda body, env=env: body.update(artifact_root=f"s3://{bucket}/{env}"),
            )

    def commit(self, message: str) -> str:
        return git.commit_all(self.repo, message)

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The real `promote` command in a subprocess, run from the repository."""
        return subprocess.run(
            [sys.executable, "-m", "promote", *args],
            cwd=self.repo,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every registry table that a promotion could touch, for 'nothing was written' checks."""
        path = self.repo / ".promote" / "registry.db"
        if not path.exists():
            return {}
        with sqlite3.connect(path) as db:
            return {
                table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in (
                    "registered_models",
                    "registered_model_tags",
                    "registered_model_aliases",
                    "model_versions",
                    "model_version_tags",
                    "runs",
                )
            }


def link_script_outside(repo: Path, folder: Path) -> Path:
    """`models/churn/linked.py` in `repo`, a symlink to a script in `folder` (outside the
    checkout) that writes a canary file if it ever runs; the canary's path."""
    canary = folder / "canary"
    outside = folder / "outside.py"
    outside.write_text(f"open({str(canary)!r}, 'w').write('ran')\n")
    (repo / "models" / MODEL / "linked.py").symlink_to(outside)
    return canary


class StoryTemplates:
    """The story's stages, built once per session and restored at one fixed path.

    Registry rows and lineage hold absolute paths, so each stage is saved aside and copied
    back to the very folder it was built in, where every recorded path is valid again.
    """

    def __init__(self, base: Path) -> None:
        self.live = base / "sandbox"
        self.saved = base / "saved"
        world = World(create_sandbox(self.live))
        world.train_dev()
        self._save("trained")
        assert world.promote("staging").ok
        assert world.promote("prod").ok
        self._save("promoted")

    def _save(self, stage: str) -> None:
        shutil.copytree(self.live, self.saved / stage, symlinks=True)

    def restore(self, stage: str) -> World:
        shutil.rmtree(self.live)
        shutil.copytree(self.saved / stage, self.live, symlinks=True)
        return World(Sandbox(self.live))
