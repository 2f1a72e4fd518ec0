"""The git operations the pipeline needs, on real repositories in a temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from promote.build import git
from promote.errors import BadReference, ExternalError

ORIGIN = "environments/dev/churn.yaml"
USER = {
    "GIT_AUTHOR_NAME": "Dana Scientist",
    "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Scientist",
    "GIT_COMMITTER_EMAIL": "dana@example.com",
}


@pytest.fixture(autouse=True)
def no_user_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git as on a fresh CI runner: no global or system configuration, so no identity."""
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in USER:
        monkeypatch.delenv(name, raising=False)


def sh(repo: Path, *args: str) -> str:
    """Plain git, as a person at the terminal runs it (not through promote)."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **USER},
    ).stdout.strip()


def new_repository(folder: Path, files: dict[str, str] | None = None) -> tuple[Path, str]:
    folder.mkdir(parents=True)
    for relative, content in (files or {"train.py": "print('v1')\n"}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(content)
    return folder, git.init_repository(folder, "main", "First commit")


def test_init_repository_commits_everything_on_the_named_branch(tmp_path: Path) -> None:
    repo, first = new_repository(
        tmp_path / "repo", {"train.py": "print('v1')\n", "models/README.md": "hello\n"}
    )
    assert re.fullmatch(r"[0-9a-f]{40}", first)
    assert git.is_repository(repo) and not git.is_repository(tmp_path)
    assert sh(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert sh(repo, "rev-parse", "HEAD") == first == git.head_commit(repo)
    assert sh(repo, "ls-tree", "-r", "--name-only", first).splitlines() == [
        "models/README.md",
        "train.py",
    ]
    assert not git.is_dirty(repo)


def test_commit_all_adds_every_change_on_top_of_head(tmp_path: Path) -> None:
    repo, first = new_repository(tmp_path / "repo")
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "new.txt").write_text("new\n")
    second = git.commit_all(repo, "Second commit")
    assert second != first and git.head_commit(repo) == second
    assert sh(repo, "rev-parse", f"{second}^") == first
    assert sh(repo, "log", "-1", "--format=%s") == "Second commit"
    assert sh(repo, "show", f"{second}:train.py") == "print('v2')"
    assert sh(repo, "show", f"{second}:new.txt") == "new"
    (repo / "new.txt").unlink()
    third = git.commit_all(repo, "Remove new.txt")
    assert sh(repo, "ls-tree", "--name-only", third) == "train.py"


def test_commits_are_the_users_when_git_knows_them_else_the_pipelines(tmp_path: Path) -> None:
    repo, _ = new_repository(tmp_path / "repo")
    assert git.identity_env(repo) == git.FALLBACK_IDENTITY
    assert sh(repo, "log", "-1", "--format=%an <%ae>") == "promote <promote@localhost>"
    sh(repo, "config", "user.name", "Dana Scientist")
    sh(repo, "config", "user.email", "dana@example.com")
    assert git.identity_env(repo) == {}
    (repo / "train.py").write_text("print('v2')\n")
    git.commit_all(repo, "As Dana")
    assert sh(repo, "log", "-1", "--format=%an <%ae>") == "Dana Scientist <dana@example.com>"


def test_a_failing_git_command_is_an_external_error_naming_it_and_the_repository(
    tmp_path: Path,
) -> None:
    repo, _ = new_repository(tmp_path / "repo")
    with pytest.raises(ExternalError, match=r"^git commit failed in .*repo: "):
        git.commit_all(repo, "Nothing changed")
    with pytest.raises(ExternalError, match=r"^git rev-parse failed in "):
        git.tree_of(repo, "no-such-ref")


def test_is_dirty_sees_untracked_and_modified_files_but_not_ignored_ones(tmp_path: Path) -> None:
    repo, _ = new_repository(tmp_path / "repo", {"train.py": "v1\n", ".gitignore": "*.log\n"})
    assert not git.is_dirty(repo)
    (repo / "run.log").write_text("ignored\n")
    assert not git.is_dirty(repo)
    (repo / "notes.txt").write_text("untracked\n")
    assert git.is_dirty(repo)
    git.commit_all(repo, "Add notes")
    assert not git.is_dirty(repo)
    (repo / "train.py").write_text("v2\n")
    assert git.is_dirty(repo)
    sh(repo, "checkout", "--", "train.py")
    assert not git.is_dirty(repo)
    sh(repo, "rm", "--quiet", "--cached", "notes.txt")  # staged removal, file still there
    assert git.is_dirty(repo)


def test_commit_exists_only_for_commits_of_this_repository(tmp_path: Path) -> None:
    repo, first = new_repository(tmp_path / "repo")
    other, elsewhere = new_repository(tmp_path / "other", {"other.py": "other\n"})
    assert git.commit_exists(repo, first)
    assert git.commit_exists(other, elsewhere) and not git.commit_exists(repo, elsewhere)
    assert not git.commit_exists(repo, "0" * 40)
    assert not git.commit_exists(repo, git.tree_of(repo, first))  # a tree is not a commit
    assert not git.commit_exists(repo, "not-a-sha")
    assert not git.commit_exists(tmp_path / "missing", first)


def test_resolve_ref_names_the_commit_of_a_branch_or_none(tmp_path: Path) -> None:
    repo, first = new_repository(tmp_path / "repo")
    sh(repo, "branch", "feature")
    (repo / "train.py").write_text("v2\n")
    second = git.commit_all(repo, "Second")
    assert git.resolve_ref(repo, "main") == second
    assert git.resolve_ref(repo, "refs/heads/main") == second
    assert git.resolve_ref(repo, "feature") == first
    assert git.resolve_ref(repo, "HEAD~1") == first
    assert git.resolve_ref(repo, "no-such-branch") is None


def test_tree_of_is_the_content_whatever_the_commit(tmp_path: Path) -> None:
    repo, first = new_repository(tmp_path / "repo")
    tree = git.tree_of(repo, first)
    assert tree == sh(repo, "rev-parse", f"{first}^{{tree}}") and tree != first
    (repo / "train.py").write_text("print('v2')\n")
    changed = git.commit_all(repo, "Change")
    assert git.tree_of(repo, changed) != tree
    (repo / "train.py").write_text("print('v1')\n")
    reverted = git.commit_all(repo, "Revert")
    assert reverted != first and git.tree_of(repo, reverted) == tree


def test_a_commit_on_a_feature_branch_is_on_main_only_once_merged(tmp_path: Path) -> None:
    repo, first = new_repository(tmp_path / "repo")
    sh(repo, "checkout", "--quiet", "-b", "feature")
    (repo / "train.py").write_text("v2\n")
    feature = git.commit_all(repo, "Feature work")
    sh(repo, "checkout", "--quiet", "main")
    assert git.is_on_branch(repo, first, "main")
    assert git.is_on_branch(repo, feature, "feature")
    assert not git.is_on_branch(repo, feature, "main")
    assert not git.is_on_branch(repo, feature, "no-such-branch")
    sh(repo, "merge", "--quiet", "--no-ff", "-m", "Merge feature", "feature")
    assert git.is_on_branch(repo, feature, "main")


def test_is_on_branch_reads_the_remote_tracking_branch_as_in_ci(tmp_path: Path) -> None:
    upstream, first = new_repository(tmp_path / "upstream")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(upstream), str(clone)], check=True)
    sh(clone, "checkout", "--quiet", "--detach")
    sh(clone, "branch", "--quiet", "-D", "main")  # a CI checkout: no local main, origin/main
    assert git.resolve_ref(clone, "main") is None
    assert git.is_on_branch(clone, first, "main")
    sh(clone, "checkout", "--quiet", "-b", "feature")
    (clone / "train.py").write_text("v2\n")
    feature = git.commit_all(clone, "Not pushed")
    assert not git.is_on_branch(clone, feature, "main")


def test_export_commit_writes_the_commits_files_not_the_working_tree(tmp_path: Path) -> None:
    repo, first = new_repository(tmp_path / "repo", {"train.py": "v1\n", "lib/util.py": "u1\n"})
    (repo / "train.py").write_text("v2\n")
    (repo / "added.py").write_text("added\n")
    git.commit_all(repo, "Second")
    (repo / "train.py").write_text("uncommitted\n")
    (repo / "scratch.py").write_text("untracked\n")

    destination = tmp_path / "export"
    git.export_commit(repo, first, destination, ORIGIN)
    assert sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*")) == [
        "lib",
        "lib/util.py",
        "train.py",
    ]
    assert (destination / "train.py").read_text() == "v1\n"
    assert (destination / "lib" / "util.py").read_text() == "u1\n"
    assert (repo / "train.py").read_text() == "uncommitted\n"  # the checkout is left alone


def test_export_of_a_commit_that_cannot_be_had_names_the_origin(tmp_path: Path) -> None:
    repo, _ = new_repository(tmp_path / "repo")
    missing = "0123456789abcdef" * 2 + "01234567"
    with pytest.raises(BadReference) as refused:
        git.export_commit(repo, missing, tmp_path / "export", ORIGIN)
    assert str(refused.value) == f"{ORIGIN}: code.commit: cannot check out {missing} from {repo}"
    assert refused.value.source == ORIGIN and refused.value.field == "code.commit"
    assert list((tmp_path / "export").iterdir()) == []


def test_commit_files_on_branch_leaves_the_working_tree_and_index_alone(tmp_path: Path) -> None:
    repo, base = new_repository(
        tmp_path / "repo", {"train.py": "v1\n", "environments/dev/churn.yaml": "dev\n"}
    )
    (repo / "train.py").write_text("edited, not staged\n")
    (repo / "staged.txt").write_text("staged\n")
    sh(repo, "add", "staged.txt")
    status, staged = sh(repo, "status", "--porcelain"), sh(repo, "diff", "--cached", "--name-only")

    commit = git.commit_files_on_branch(
        repo,
        "promote/prod/churn-v1",
        base,
        {"environments/prod/churn.yaml": "prod: 1\n", "environments/dev/churn.yaml": "dev: 2\n"},
        "Promote churn to prod",
    )
    assert git.resolve_ref(repo, "promote/prod/churn-v1") == commit
    assert sh(repo, "rev-parse", f"{commit}^") == base
    assert sh(repo, "log", "-1", "--format=%s", commit) == "Promote churn to prod"
    assert sh(repo, "show", f"{commit}:environments/prod/churn.yaml") == "prod: 1"
    assert sh(repo, "show", f"{commit}:environments/dev/churn.yaml") == "dev: 2"
    assert sh(repo, "show", f"{commit}:train.py") == "v1"  # base's files, not the working tree
    assert "staged.txt" not in sh(repo, "ls-tree", "-r", "--name-only", commit)

    assert git.head_commit(repo) == base and sh(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert sh(repo, "status", "--porcelain") == status
    assert sh(repo, "diff", "--cached", "--name-only") == staged == "staged.txt"
    assert (repo / "train.py").read_text() == "edited, not staged\n"
    assert not (repo / "environments" / "prod").exists()
    assert (repo / "environments" / "dev" / "churn.yaml").read_text() == "dev\n"


def test_commit_files_on_branch_moves_an_existing_branch(tmp_path: Path) -> None:
    repo, base = new_repository(tmp_path / "repo")
    first = git.commit_files_on_branch(repo, "proposal", base, {"a.yaml": "1\n"}, "One")
    second = git.commit_files_on_branch(repo, "proposal", base, {"a.yaml": "2\n"}, "Two")
    assert first != second and git.resolve_ref(repo, "proposal") == second
    assert sh(repo, "show", "proposal:a.yaml") == "2"


def test_code_repository_dot_is_the_gitops_repository_itself(tmp_path: Path) -> None:
    repo, _ = new_repository(tmp_path / "repo")
    assert git.resolve_code_repository(repo, ".") == repo


def test_code_repository_may_be_another_local_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    repo, _ = new_repository(tmp_path / "repo")
    code, commit = new_repository(tmp_path / "code", {"train.py": "code\n"})
    resolved = git.resolve_code_repository(repo, "../code")
    assert resolved == code.resolve()
    assert git.commit_exists(resolved, commit)
    assert not cache.exists()  # used in place, not cloned


def test_a_remote_code_repository_is_cloned_into_the_cache_and_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    repo, _ = new_repository(tmp_path / "repo")
    remote, first = new_repository(tmp_path / "remote", {"train.py": "v1\n"})
    location = remote.as_uri()  # file:///...: not a folder beside the repository

    clone = git.resolve_code_repository(repo, location)
    assert clone.parent == cache / "promote" / "repos"
    assert sh(clone, "rev-parse", "--is-bare-repository") == "true"
    assert git.commit_exists(clone, first)

    (remote / "train.py").write_text("v2\n")
    second = git.commit_all(remote, "Second")
    sh(remote, "branch", "feature")
    assert not git.commit_exists(clone, second)
    assert git.resolve_code_repository(repo, location) == clone  # same cache entry
    assert git.commit_exists(clone, second)
    assert git.resolve_ref(clone, "feature") == second

    other, elsewhere = new_repository(tmp_path / "other", {"other.py": "other\n"})
    other_clone = git.resolve_code_repository(repo, other.as_uri())
    assert other_clone != clone and other_clone.parent == clone.parent
    assert git.commit_exists(other_clone, elsewhere) and not git.commit_exists(clone, elsewhere)


def test_a_code_repository_that_cannot_be_cloned_is_an_external_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo, _ = new_repository(tmp_path / "repo")
    with pytest.raises(ExternalError, match=r"^git clone failed in "):
        git.resolve_code_repository(repo, (tmp_path / "nowhere").as_uri())


def test_changed_paths_names_what_the_user_changed_and_skips_data_and_promotes_own(
    tmp_path: Path,
) -> None:
    files = {"train.py": "v1\n", "old.py": "x\n", "data/keep.txt": "k\n", ".gitignore": "*.log\n"}
    repo, _ = new_repository(tmp_path / "repo", files)
    (repo / "train.py").write_text("v2\n")  # " M train.py": its leading space is meaningful
    sh(repo, "mv", "old.py", "renamed file.py")
    (repo / "data" / "new.csv").write_text("a,b\n")
    (repo / ".promote").mkdir()
    (repo / ".promote" / "registry.db").write_text("")
    (repo / "run.log").write_text("ignored\n")
    (repo / "data" / "keep.txt").write_text("edited\n")  # tracked: a change, wherever it is
    outside = [repo / "data", repo / ".promote"]
    assert sorted(git.changed_paths(repo, outside)) == [
        "data/keep.txt",
        "renamed file.py",
        "train.py",
    ]
    assert "data/new.csv" in git.changed_paths(repo)
