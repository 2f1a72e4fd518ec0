"""Manifests parsed once per content: a hit is exactly what parsing returns, never stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promote import manifests
from promote.errors import InputError
from promote.manifests import load_repository
from promote.parse_cache import ParseCache, cache_file

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


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = manifests.parse_yaml

    def counting(text: str, display: str) -> dict[str, object]:
        parsed.append(display)
        return real(text, display)

    monkeypatch.setattr(manifests, "parse_yaml", counting)
    return parsed


def test_a_manifest_is_parsed_once_per_content(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = count_parses(monkeypatch)
    first = load_repository(repo)
    manifest_reads = [d for d in parsed if d.endswith("churn.yaml")]
    assert manifest_reads == ["environments/dev/churn.yaml"]
    second = load_repository(repo)
    assert [d for d in parsed if d.endswith("churn.yaml")] == manifest_reads  # a hit
    assert second.specs == first.specs

    changed = MANIFEST.replace("C: 0.5", "C: 0.7")
    (repo / "environments" / "dev" / "churn.yaml").write_text(changed)
    third = load_repository(repo)
    assert third.specs[("dev", "churn")].manifest.code.params == {"C": 0.7}
    assert len([d for d in parsed if d.endswith("churn.yaml")]) == 2


def test_errors_are_never_cached(repo: Path) -> None:
    path = repo / "environments" / "dev" / "churn.yaml"
    path.write_text("model: churn\ncode: [unclosed\n")
    for _ in range(2):
        with pytest.raises(InputError, match="invalid YAML"):
            load_repository(repo)


def test_only_plain_data_is_kept(tmp_path: Path) -> None:
    cache = ParseCache(tmp_path / "cache.json")
    for text in ("when: 2020-01-01", "1: integer key", "x: .nan", "blob: !!binary aGk="):
        cache.parse(text, lambda body: manifests.parse_yaml(body, "t.yaml"))
    assert cache.used == {}
    cache.parse("a: [1, 2.5, true, null]", lambda body: manifests.parse_yaml(body, "t.yaml"))
    assert list(cache.used.values()) == [{"a": [1, 2.5, True, None]}]


def test_a_damaged_cache_is_parsing_again(repo: Path) -> None:
    load_repository(repo)
    path = cache_file(repo.resolve())
    assert path is not None and path.exists()
    body = json.loads(path.read_text())
    body["entries"] = {key: "not a mapping" for key in body["entries"]}
    path.write_text(json.dumps(body))
    assert load_repository(repo).specs[("dev", "churn")].manifest.code.params == {"C": 0.5}
    path.write_text("{ not json")
    assert load_repository(repo).specs[("dev", "churn")].manifest.data.path == "churn"
