"""plan: questions a large promotion asks many times are asked once per plan."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from conftest import World

from promote.build import git
from promote.plan import CodeChecks


def test_pinned_commits_are_checked_once_per_plan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = git.head_commit(world.repo)
    git.run_git(world.repo, "checkout", "--quiet", "-b", "feature")
    (world.repo / "notes.txt").write_text("not merged\n")
    unmerged = world.commit("Work in progress")

    git_calls: list[list[str]] = []
    real = subprocess.run

    def counting(command: list[str], *args: Any, **kwargs: Any) -> Any:
        git_calls.append(command)
        return real(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    checks = CodeChecks(world.repo)
    assert checks.problem(".", head, "main") is None
    asked = len(git_calls)
    assert asked >= 2  # the commit exists, and is on the protected branch
    for _ in range(100):  # a hundred manifests pinned to the same commit
        assert checks.problem(".", head, "main") is None
    assert len(git_calls) == asked

    assert checks.problem(".", "f" * 40, "main") == "ffffffffffff does not exist"
    on_feature = checks.problem(".", unmerged, "main")
    assert on_feature == f"{unmerged[:12]} is not on the protected branch main"
