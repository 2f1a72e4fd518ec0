"""The plan comment, the job summary and the promotion PR: one markdown, posted through the
real CLI to the loopback GitHub; the comment and the PR are updated in place, never doubled."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.github_fake import FakeGitHub
from support.world import MODEL, World

from promote.build import git
from promote.github.report import (
    COMMENT_MARKER,
    MAX_BODY_CHARS,
    report_states,
    table_cell,
    within_body_limit,
)
from promote.manifests.loader import load_repository
from promote.registry.entities import TAG_COMMIT

FIXTURES = Path(__file__).parent / "fixtures"


def pull_request_event(directory: Path, number: int) -> Path:
    event = json.loads((FIXTURES / "pull_request.json").read_text())
    event["number"] = event["pull_request"]["number"] = number
    path = directory / "pull_request_event.json"
    path.write_text(json.dumps(event))
    return path


def test_plan_comment_and_job_summary_render_the_same_table(
    trained: World, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained.propose_and_merge("staging")
    github.add_pull(12, "alice", "a" * 40)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(pull_request_event(tmp_path, 12)))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    first = trained.cli("report", "--summary", "--comment")
    assert first.returncode == 0, first.stderr
    second = trained.cli("report", "--summary", "--comment")
    assert second.returncode == 0, second.stderr

    [comment] = github.comments[12]
    markdown = comment["body"]
    assert markdown.startswith(COMMENT_MARKER)
    assert summary.read_text() == (markdown + "\n") * 2
    assert first.stdout.strip() == markdown.strip()
    dev = trained.registry.model(f"dev.{MODEL}")
    assert dev is not None and dev.champion is not None
    commit = dev.champion.tags[TAG_COMMIT]
    staging_row = next(line for line in markdown.splitlines() if "**build**" in line)
    assert f"`{commit[:12]}`" in staging_row
    assert "dev v1 → new" in staging_row
    assert re.search(r"roc_auc 0\.\d{4}", staging_row)
    assert "✅ metric roc_auc" in staging_row
    assert "#### dev" in markdown and "#### staging" in markdown
    assert "ghs_test-token-never-printed" not in first.stdout + first.stderr


def test_after_apply_the_summary_shows_the_champion_against_the_previous(
    promoted: World,
) -> None:
    promoted.train_dev(C=0.2)
    markdown = report_states(
        load_repository(promoted.repo), promoted.registry, "dev", "promote apply: dev"
    )
    [row] = [line for line in markdown.splitlines() if line.startswith(f"| {MODEL} |")]
    assert "**dev**" in row and "| v2 |" in row
    assert "(champion 0." in row  # measured against v1, now `previous`


def test_failing_gates_show_as_failures(trained: World) -> None:
    trained.propose_and_merge("staging")
    trained.edit_yaml(
        f"environments/staging/{MODEL}.yaml",
        lambda body: body.setdefault("gates", {}).update(metrics={"roc_auc": {"min": 0.999}}),
    )
    markdown = report_states(load_repository(trained.repo), trained.registry, "staging", "plan")
    assert "❌ metric roc_auc" in markdown and "needs &gt;= 0.999" in markdown


def test_table_cells_cannot_break_the_table() -> None:
    assert table_cell("a | b\nc <script>") == "a \\| b c &lt;script&gt;"


def test_open_pr_pushes_the_branch_and_updates_the_same_pull_request(
    trained: World, github: FakeGitHub, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git.run_git(tmp_path, "init", "--quiet", "--bare", str(origin))
    git.run_git(trained.repo, "remote", "add", "origin", str(origin))

    opened = trained.cli("model", MODEL, "--to", "staging", "--open-pr", "--json")
    assert opened.returncode == 0, opened.stderr
    result = json.loads(opened.stdout)
    assert result["pull_request"]["created"] is True
    number = result["pull_request"]["number"]
    branch = result["branch"]
    pushed = git.run_git(origin, "rev-parse", f"refs/heads/{branch}")
    assert pushed == result["commit"]

    again = trained.cli("model", MODEL, "--to", "staging", "--open-pr")
    assert again.returncode == 0, again.stderr
    assert f"updated pull request #{number}" in again.stdout
    assert list(github.pulls) == [number]
    posts = [r for r in github.requests if r[0] == "POST" and r[1].endswith("/pulls")]
    assert len(posts) == 1

    pull = github.pulls[number]
    body = pull["body"]
    assert pull["base"]["ref"] == "main" and pull["head"]["ref"] == branch
    assert pull["title"] == f"Promote {MODEL} to staging: dev.{MODEL}/1"
    dev = trained.registry.model(f"dev.{MODEL}")
    assert dev is not None and dev.champion is not None
    assert dev.champion.tags[TAG_COMMIT] in body  # lineage: the full pinned commit
    assert "scikit-learn" in body and "models/churn/train.py" in body
    assert "#### staging" in body and "**build**" in body  # the plan table
    assert re.search(r"roc_auc 0\.\d{4}", body) and "✅ metric" in body
    assert COMMENT_MARKER not in body


def test_a_body_over_githubs_limit_is_cut_saying_where_the_rest_is() -> None:
    short = "| a | b |\n"
    assert within_body_limit(short, "elsewhere") == short
    cut = within_body_limit("x" * (MAX_BODY_CHARS + 10), "the report is logged to runs:/r/p")
    assert len(cut) == MAX_BODY_CHARS
    assert cut.endswith(
        "cut here: GitHub takes 65,536 characters; the report is logged to runs:/r/p.\n"
    )
