"""Loading and validating environments and manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from promote.errors import InputError
from promote.manifests.loader import load_repository

ENVIRONMENTS = {
    "dev": {"name": "dev", "data_root": "data/dev"},
    "staging": {"name": "staging", "promotes_from": "dev", "data_root": "s3://bucket/staging"},
    "prod": {"name": "prod", "promotes_from": "staging", "data_root": "s3://bucket/prod"},
}
COMMIT = "a" * 40


def _write(root: Path, relative: str, body: object) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    for name, body in ENVIRONMENTS.items():
        _write(tmp_path, f"environments/{name}/environment.yaml", body)
    _write(
        tmp_path,
        "environments/prod/churn.yaml",
        {
            "model": "churn",
            "source": {"environment": "staging", "version": 3},
            "code": {"commit": COMMIT, "entrypoint": "models/churn/train.py", "params": {"C": 1}},
            "data": {"path": "churn"},
        },
    )
    return tmp_path


def test_environments_are_ordered_by_promotion(layout: Path) -> None:
    repo = load_repository(layout)
    assert [e.name for e in repo.ordered_environments()] == ["dev", "staging", "prod"]
    assert repo.registered_name("prod", "churn") == "prod.churn"
    spec = repo.spec("prod", "churn")
    assert spec.managed and spec.gates.metrics == {}


def test_manifest_digest_is_stable_and_sensitive(layout: Path) -> None:
    first = load_repository(layout).spec("prod", "churn").digest
    assert load_repository(layout).spec("prod", "churn").digest == first
    path = layout / "environments/prod/churn.yaml"
    body = yaml.safe_load(path.read_text())
    body["code"]["params"] = {"C": 2}
    path.write_text(yaml.safe_dump(body))
    assert load_repository(layout).spec("prod", "churn").digest != first
    body["code"]["params"] = {"C": 1}
    path.write_text(yaml.safe_dump(body, default_flow_style=True))
    assert load_repository(layout).spec("prod", "churn").digest == first
    _write(
        layout, "environments/prod/environment.yaml", {**ENVIRONMENTS["prod"], "training": "copy"}
    )
    assert load_repository(layout).spec("prod", "churn").digest != first


@pytest.mark.parametrize(
    ("relative", "change", "message"),
    [
        (
            "environments/prod/churn.yaml",
            {"code": {"commit": "abc", "entrypoint": "t.py"}},
            "environments/prod/churn.yaml: code.commit: String should match pattern",
        ),
        (
            "environments/prod/churn.yaml",
            {"source": None},
            "environments/prod/churn.yaml: source: required: prod promotes from staging",
        ),
        (
            "environments/prod/churn.yaml",
            {"model": "fraud"},
            "environments/prod/churn.yaml: model: must match the file name 'churn'",
        ),
        (
            "environments/prod/environment.yaml",
            {"promotes_from": "qa"},
            "environments/prod/environment.yaml: promotes_from: unknown environment 'qa'",
        ),
        (
            "environments/prod/environment.yaml",
            {"model_name": "{model}"},
            "environments/prod/environment.yaml: model_name: must contain both {env} and {model}",
        ),
        (
            "environments/prod/environment.yaml",
            {"data_root": "https://example.invalid/data"},
            "environments/prod/environment.yaml: data_root: must be a local folder or an s3:// URI",
        ),
    ],
)
def test_errors_name_the_file_and_the_field(
    layout: Path, relative: str, change: dict[str, object], message: str
) -> None:
    path = layout / relative
    body = yaml.safe_load(path.read_text())
    body.update(change)
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(InputError) as caught:
        load_repository(layout)
    assert str(caught.value).startswith(message), str(caught.value)


def test_cycles_are_refused(layout: Path) -> None:
    _write(
        layout,
        "environments/dev/environment.yaml",
        {**ENVIRONMENTS["dev"], "promotes_from": "prod"},
    )
    with pytest.raises(InputError, match="promote in a cycle"):
        load_repository(layout)


def test_an_environment_folder_needs_its_file(layout: Path) -> None:
    (layout / "environments" / "qa").mkdir()
    with pytest.raises(InputError, match=r"environments/qa/environment\.yaml: missing"):
        load_repository(layout)


def test_a_repository_without_environments_is_empty(tmp_path: Path) -> None:
    repo = load_repository(tmp_path)
    assert repo.environments == {} and repo.specs == {}


def test_a_manifest_can_tighten_its_environments_gates_but_not_relax_them(layout: Path) -> None:
    _write(
        layout,
        "environments/prod/environment.yaml",
        {
            **ENVIRONMENTS["prod"],
            "gates": {"metrics": {"auc": {"min": 0.8}}, "max_artifact_mb": 10},
        },
    )
    path = layout / "environments/prod/churn.yaml"
    body = yaml.safe_load(path.read_text())
    body["gates"] = {
        "metrics": {"auc": {"min": 0.5, "max": 0.99}, "loss": {"max": 0.3}},
        "max_artifact_mb": 50,
    }
    path.write_text(yaml.safe_dump(body))
    gates = load_repository(layout).spec("prod", "churn").gates
    assert (gates.metrics["auc"].min, gates.metrics["auc"].max) == (0.8, 0.99)
    assert gates.metrics["loss"].max == 0.3
    assert gates.max_artifact_mb == 10


@pytest.mark.parametrize(
    "repo", ["https://user:ghp_abcdefabcdef@github.example/org/code.git", "--upload-pack=touch x"]
)
def test_code_repositories_with_credentials_or_options_are_refused(layout: Path, repo: str) -> None:
    path = layout / "environments/prod/churn.yaml"
    body = yaml.safe_load(path.read_text())
    body["code"]["repo"] = repo
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(InputError) as caught:
        load_repository(layout)
    assert str(caught.value).startswith("environments/prod/churn.yaml: code.repo: must")
    assert "ghp_" not in str(caught.value)
