"""Pushing a proposal's branch from a GitHub Actions job, whose checkout keeps no credentials:
the token goes to git in its environment, for an https origin only."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from promote.build import git
from promote.github.client import GitHubClient
from promote.github.context import ApiSettings
from promote.github.pull_request import push_environment
from promote.manifests.repository import Repository

TOKEN = "ghs_test-token-never-printed"
ACTIONS = {"GITHUB_ACTIONS": "true"}


def _repository(tmp_path: Path, origin: str) -> Repository:
    root = tmp_path / "repo"
    root.mkdir()
    git.run_git(root, "init", "--quiet")
    git.run_git(root, "remote", "add", "origin", origin)
    return Repository(root)


def _client() -> GitHubClient:
    return GitHubClient("acme/models", ApiSettings.from_environ({"GITHUB_TOKEN": TOKEN}))


def test_in_actions_an_https_origin_gets_the_token_as_a_header(tmp_path: Path) -> None:
    url = "https://github.com/acme/models"
    env = push_environment(_repository(tmp_path, url), _client(), ACTIONS)
    assert env is not None
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == f"http.{url}.extraheader"
    scheme, encoded = env["GIT_CONFIG_VALUE_0"].removeprefix("AUTHORIZATION: ").split()
    assert scheme == "basic"
    assert base64.b64decode(encoded).decode() == f"x-access-token:{TOKEN}"
    # git reads it as configuration, for that remote alone: no argument carries the token.
    repo = tmp_path / "repo"
    read = subprocess.run(
        ["git", "-C", str(repo), "config", "--get-urlmatch", "http.extraheader", url],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert read.stdout.strip() == env["GIT_CONFIG_VALUE_0"]


def test_off_actions_or_to_another_remote_git_pushes_with_its_own_credentials(
    tmp_path: Path,
) -> None:
    https = _repository(tmp_path, "https://github.com/acme/models")
    assert push_environment(https, _client(), {}) is None
    (tmp_path / "repo").rename(tmp_path / "https")
    local = _repository(tmp_path, str(tmp_path / "origin.git"))
    assert push_environment(local, _client(), ACTIONS) is None
