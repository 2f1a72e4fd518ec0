"""Manifests validated once per content: a hit gives exactly what validating gives, never stale,
and a damaged or altered cache can slow a load down or stop an apply, never steer one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promote.errors import InputError, PromoteError
from promote.manifests import loader, repository, schema
from promote.manifests.cache import cache_file
from promote.manifests.loader import load_repository

MANIFEST = """model: churn
code: {entrypoint: models/churn/train.py, params: {C: 0.5}}
data: {path: churn}
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "repo"
    (root / "environments" / "dev").mkdir(parents=True)
    (root / "environments" / "dev" / "environment.yaml").write_text("name: dev\ndata_root: data\n")
    (root / "environments" / "dev" / "churn.yaml").write_text(MANIFEST)
    return root


def count_validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    validated: list[str] = []
    real = schema.parse

    def counting(model_class: type, data: dict[str, object], display: str) -> object:
        validated.append(display)
        return real(model_class, data, display)  # type: ignore[arg-type]

    # Both places that validate a manifest's text: the loader, and a spec asked for it again.
    monkeypatch.setattr(loader, "parse", counting)
    monkeypatch.setattr(repository, "parse", counting)
    return validated


def manifest_validations(validated: list[str]) -> list[str]:
    return [display for display in validated if display.endswith("churn.yaml")]


def test_a_manifest_is_validated_once_per_content(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated = count_validations(monkeypatch)
    first = load_repository(repo)
    assert manifest_validations(validated) == ["environments/dev/churn.yaml"]
    second = load_repository(repo)
    assert len(manifest_validations(validated)) == 1  # a hit: facts, no pydantic objects
    assert second.specs == first.specs
    assert second.specs[("dev", "churn")].digest == first.specs[("dev", "churn")].digest
    # What a hit defers is still there, validated from the text when asked for.
    assert second.specs[("dev", "churn")].manifest == first.specs[("dev", "churn")].manifest

    changed = MANIFEST.replace("C: 0.5", "C: 0.7")
    (repo / "environments" / "dev" / "churn.yaml").write_text(changed)
    third = load_repository(repo)
    assert third.specs[("dev", "churn")].manifest.code.params == {"C": 0.7}
    assert third.specs[("dev", "churn")].digest != first.specs[("dev", "churn")].digest
    # Loads validated two texts; the three specs asked for their manifest validated theirs.
    assert len(manifest_validations(validated)) == 5


def test_the_environment_is_part_of_what_was_validated(repo: Path) -> None:
    first = load_repository(repo).specs[("dev", "churn")]
    settings = repo / "environments" / "dev" / "environment.yaml"
    settings.write_text("name: dev\ndata_root: other-data\n")
    second = load_repository(repo).specs[("dev", "churn")]
    assert second.digest != first.digest  # the data root is part of what gets approved

    # The same text is valid in dev and refused where a source is required.
    (repo / "environments" / "prod").mkdir()
    (repo / "environments" / "prod" / "environment.yaml").write_text(
        "name: prod\npromotes_from: dev\ndata_root: data\n"
    )
    (repo / "environments" / "prod" / "churn.yaml").write_text(MANIFEST)
    with pytest.raises(InputError, match=r"environments/prod/churn.yaml: source: required"):
        load_repository(repo)


def test_the_file_name_is_checked_on_a_hit(repo: Path) -> None:
    load_repository(repo)
    (repo / "environments" / "dev" / "fraud.yaml").write_text(MANIFEST)  # the same text
    with pytest.raises(InputError, match=r"fraud.yaml: model: must match the file name"):
        load_repository(repo)


def test_errors_are_never_cached(repo: Path) -> None:
    path = repo / "environments" / "dev" / "churn.yaml"
    path.write_text("model: churn\ncode: [unclosed\n")
    for _ in range(2):
        with pytest.raises(InputError, match="invalid YAML"):
            load_repository(repo)


def cached_entries(repo: Path) -> tuple[Path, dict[str, object]]:
    path = cache_file(repo.resolve())
    assert path is not None and path.exists()
    return path, json.loads(path.read_text())


def test_a_damaged_cache_means_validating_again(repo: Path) -> None:
    load_repository(repo)
    path, body = cached_entries(repo)
    assert body["entries"]
    for damage in ("not a list", ["churn", None, "dev", None, "x"], [1, 2, 3, 4, 5]):
        body["entries"] = {key: damage for key in body["entries"]}  # type: ignore[union-attr]
        path.write_text(json.dumps(body))
        spec = load_repository(repo).specs[("dev", "churn")]
        assert spec.manifest.code.params == {"C": 0.5}
        assert spec.model == "churn" and len(spec.digest) == 64
    path.write_text("{ not json")
    assert load_repository(repo).specs[("dev", "churn")].manifest.data.path == "churn"


def test_an_altered_cache_stops_apply_before_it_acts(repo: Path) -> None:
    """Facts in the cache that the text does not give are caught by `confirm`."""
    honest = load_repository(repo).specs[("dev", "churn")]
    honest.confirm()
    path, body = cached_entries(repo)
    entries = body["entries"]
    assert isinstance(entries, dict)
    entries.update({key: ["churn", None, None, None, "0" * 64, "churn"] for key in entries})
    path.write_text(json.dumps(body))
    altered = load_repository(repo).specs[("dev", "churn")]
    assert altered.digest == "0" * 64  # planning saw the altered facts...
    with pytest.raises(PromoteError, match="manifest cache disagrees"):
        altered.confirm()  # ...and apply refuses to act on them


def test_a_large_first_load_validates_in_parallel_with_the_same_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    root = tmp_path / "repo"
    folder = root / "environments" / "dev"
    folder.mkdir(parents=True)
    (folder / "environment.yaml").write_text("name: dev\ndata_root: data\n")
    for index in range(60):
        text = MANIFEST.replace("churn", f"m{index:02d}").replace("0.5", f"0.{index + 1}")
        (folder / f"m{index:02d}.yaml").write_text(text)

    def load(parallel: bool) -> repository.Repository:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)  # a first load: nothing validated yet
        return load_repository(root, parallel_from=1 if parallel else 10**9)

    serial, parallel = load(False), load(True)
    assert len(parallel.specs) == 60 and parallel.specs == serial.specs
    assert [s.digest for s in parallel.specs.values()] == [s.digest for s in serial.specs.values()]

    # Two bad manifests: whichever way, the first in file order is the one reported.
    (folder / "m10.yaml").write_text(MANIFEST.replace("churn", "m10") + "colour: blue\n")
    (folder / "m40.yaml").write_text("model: m40\ncode: [unclosed\n")
    for parallel_load in (True, False):
        with pytest.raises(InputError) as refused:
            load(parallel_load)
        assert str(refused.value) == "environments/dev/m10.yaml: colour: unknown field"


def test_a_cached_manifest_is_refused_once_its_environment_tightens_under_it(repo: Path) -> None:
    """A hit holds only for the environment settings it was validated under: a floor raised
    after a manifest was cached is one the cached manifest must meet."""
    (repo / "environments" / "dev" / "churn.yaml").write_text(
        MANIFEST + "gates: {max_artifact_mb: 50}\n"
    )
    assert load_repository(repo).specs[("dev", "churn")].gates.max_artifact_mb == 50
    settings = repo / "environments" / "dev" / "environment.yaml"
    settings.write_text("name: dev\ndata_root: data\ngates: {max_artifact_mb: 10}\n")
    with pytest.raises(InputError) as refused:
        load_repository(repo)
    assert str(refused.value) == (
        "environments/dev/churn.yaml: gates.max_artifact_mb: 50.0 loosens environment dev's 10.0 "
        "(a manifest may only tighten its environment's gates)"
    )
