"""The few git operations the pipeline needs, run through the git executable."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from promote.errors import BadReference, ExternalError

FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "promote",
    "GIT_AUTHOR_EMAIL": "promote@localhost",
    "GIT_COMMITTER_NAME": "promote",
    "GIT_COMMITTER_EMAIL": "promote@localhost",
}


def run_git(
    repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, raw: bool = False
) -> str:
    """git's output, stripped unless `raw` (where leading spaces mean something)."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            # None inherits the environment in C: no Python-side copy that MLflow's telemetry
            # thread (which unsets a variable of its own) can break mid-iteration.
            env={**os.environ, **env} if env else None,
            check=False,
        )
    except FileNotFoundError:
        raise ExternalError("git is not installed or not on PATH") from None
    if check and completed.returncode != 0:
        detail = completed.stderr.strip().splitlines()
        raise ExternalError(f"git {args[0]} failed in {repo}: {detail[-1] if detail else 'error'}")
    return completed.stdout if raw else completed.stdout.strip()


def is_repository(path: Path) -> bool:
    return _succeeds(path, "rev-parse", "--git-dir")


def head_commit(repo: Path) -> str:
    return run_git(repo, "rev-parse", "HEAD")


def is_dirty(repo: Path) -> bool:
    """Tracked changes or untracked, not ignored, files: a model trained from them is unpinned."""
    return bool(changed_paths(repo))


def changed_paths(repo: Path, outside: Iterable[Path] = ()) -> list[str]:
    """What the user changed since HEAD, relative to `repo`: tracked changes, and untracked files
    git does not ignore, except under the folders in `outside` (the local data root, promote's
    own `.promote/`): what a training reads or writes there is not code."""
    skipped = [folder.resolve() for folder in outside]
    listing = run_git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", raw=True)
    entries = listing.split("\0")
    changed = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        if entry[0] in "RC":  # a rename or copy: its source path follows, the path is the new one
            index += 1
        path = entry[3:]
        absolute = (repo / path).resolve()
        if entry.startswith("??") and any(absolute.is_relative_to(f) for f in skipped):
            continue
        changed.append(path)
    return changed


def _succeeds(repo: Path, *args: str) -> bool:
    completed = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    return completed.returncode == 0


def commit_exists(repo: Path, commit: str) -> bool:
    return _succeeds(repo, "cat-file", "-e", f"{commit}^{{commit}}")


def resolve_ref(repo: Path, ref: str) -> str | None:
    """The commit a branch or ref names, or None when it does not exist."""
    return (
        run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False) or None
    )


def tree_of(repo: Path, commit: str) -> str:
    return run_git(repo, "rev-parse", f"{commit}^{{tree}}")


def is_on_branch(repo: Path, commit: str, branch: str) -> bool:
    """True when `commit` is reachable from `branch` (or its remote-tracking copy, as in CI)."""
    for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        if _succeeds(repo, "rev-parse", "--verify", "--quiet", ref) and _succeeds(
            repo, "merge-base", "--is-ancestor", commit, ref
        ):
            return True
    return False


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    """True when `older` is `newer` or one of its ancestors."""
    return _succeeds(repo, "merge-base", "--is-ancestor", older, newer)


def first_parent(repo: Path, commit: str) -> str | None:
    """The commit `commit` was made on top of (for a merge: the branch it merged into)."""
    return resolve_ref(repo, f"{commit}^1")


def file_at(repo: Path, commit: str, relative: str) -> str | None:
    """The text of `relative` at `commit`, or None when the file did not exist there."""
    if not _succeeds(repo, "cat-file", "-e", f"{commit}:{relative}"):
        return None
    return run_git(repo, "show", f"{commit}:{relative}")


def changed_files(repo: Path, commit: str) -> list[str]:
    """What `commit` changed against its first parent (for a merge: what the merge brought)."""
    parent = first_parent(repo, commit)
    if parent is None:
        return run_git(repo, "ls-tree", "-r", "--name-only", commit).splitlines()
    return run_git(repo, "diff", "--name-only", "--no-renames", parent, commit).splitlines()


def is_shallow(repo: Path) -> bool:
    return run_git(repo, "rev-parse", "--is-shallow-repository") == "true"


def remote_tip(repo: Path, branch: str, remote: str = "origin") -> str | None:
    """What `branch` points at on `remote` now (asked of the remote, not the local copy)."""
    answer = run_git(repo, "ls-remote", "--exit-code", remote, f"refs/heads/{branch}", check=False)
    return answer.split()[0] if answer else None


def export_commit(repo: Path, commit: str, destination: Path, origin: str) -> None:
    """Write the tree of `commit` into `destination`: an isolated copy, not the user's checkout.

    `origin`, what asked for the commit (a manifest's path), is named if it cannot be had.
    """
    destination.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise BadReference(origin, "code.commit", f"cannot check out {commit} from {repo}")
    subprocess.run(
        ["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True, capture_output=True
    )


def resolve_code_repository(repo_root: Path, location: str) -> Path:
    """'.' is the GitOps repository itself; anything else is cloned once into a local cache."""
    if location == ".":
        return repo_root
    candidate = (repo_root / location).resolve()
    if candidate.is_dir() and is_repository(candidate):
        return candidate
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promote" / "repos"
    target = cache / hashlib.sha256(location.encode()).hexdigest()[:16]
    if target.is_dir():
        run_git(target, "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*")
    else:
        cache.mkdir(parents=True, exist_ok=True)
        run_git(cache, "clone", "--quiet", "--bare", "--", location, str(target))
    return target


def identity_env(repo: Path) -> dict[str, str]:
    """Commit as the user when git knows who they are, else under a neutral pipeline identity."""
    if run_git(repo, "config", "user.email", check=False):
        return {}
    return dict(FALLBACK_IDENTITY)


def commit_files_on_branch(
    repo: Path, branch: str, base: str, files: dict[str, str], message: str
) -> str:
    """Commit `files` on top of `base` as `branch` without touching the working tree or index."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index"), **identity_env(repo)}
        run_git(repo, "read-tree", base, env=env)
        for relative, content in files.items():
            blob_file = Path(scratch) / "blob"
            blob_file.write_text(content, encoding="utf-8")
            blob = run_git(repo, "hash-object", "-w", str(blob_file))
            run_git(
                repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{relative}", env=env
            )
        tree = run_git(repo, "write-tree", env=env)
        commit = run_git(repo, "commit-tree", tree, "-p", base, "-m", message, env=env)
    run_git(repo, "update-ref", f"refs/heads/{branch}", commit)
    return commit


def commit_all(repo: Path, message: str) -> str:
    """Commit every change in the working tree, as the user or the pipeline identity."""
    run_git(repo, "add", "--all")
    run_git(repo, "commit", "--quiet", "-m", message, env=identity_env(repo))
    return head_commit(repo)


def init_repository(directory: Path, branch: str, message: str) -> str:
    """A new repository on `branch` holding everything in `directory` as its first commit."""
    run_git(directory, "init", "--quiet", f"--initial-branch={branch}")
    return commit_all(directory, message)
