"""Loading and validating environments and manifests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from promote.build.compute.local import check_interpreter
from promote.errors import InputError
from promote.manifests.loader import load_repository
from promote.manifests.schema import MAX_YAML_BYTES, EnvironmentConfig, Gates

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


def _refused(layout: Path) -> InputError:
    """The one InputError loading `layout` raises, checked to be one line."""
    with pytest.raises(InputError) as caught:
        load_repository(layout)
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)
    return caught.value


PROD_MANIFEST_TEXT = f"""model: churn
source: {{environment: staging, version: 3}}
code: {{commit: {COMMIT}, entrypoint: models/churn/train.py}}
data: {{path: churn}}
"""


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


# prod's churn manifest's digest before `data.as_of` and the footprint and drift gates existed:
# upgrading promote must keep it, or every model would rebuild.
DIGEST_BEFORE_LATER_FIELDS = "8fc7da490de40bf54d563fe96c1bd8be48b991a103402b004614dad201408215"


def test_a_retrain_time_enters_the_digest_and_its_absence_keeps_the_digest_of_old(
    layout: Path,
) -> None:
    assert load_repository(layout).spec("prod", "churn").digest == DIGEST_BEFORE_LATER_FIELDS
    path = layout / "environments/prod/churn.yaml"
    body = yaml.safe_load(path.read_text())
    digests = set()
    for as_of in ("2026-12-03T06:17:00Z", "2026-12-03T07:17:00+01:00", "2026-12-04T06:17:00Z"):
        body["data"]["as_of"] = as_of
        path.write_text(yaml.safe_dump(body))
        digests.add(load_repository(layout).spec("prod", "churn").digest)
    # The same instant in two zones is one digest; another day is another.
    assert len(digests) == 2


@pytest.mark.parametrize("gate", ["max_latency_ratio", "max_complexity_ratio", "max_drift_share"])
def test_a_later_gate_enters_the_digest_only_once_it_is_set(layout: Path, gate: str) -> None:
    assert load_repository(layout).spec("prod", "churn").digest == DIGEST_BEFORE_LATER_FIELDS
    path = layout / "environments/prod/churn.yaml"
    body = yaml.safe_load(path.read_text())
    body.setdefault("gates", {})[gate] = 0.5
    path.write_text(yaml.safe_dump(body))
    assert load_repository(layout).spec("prod", "churn").digest != DIGEST_BEFORE_LATER_FIELDS


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
        (
            "environments/prod/churn.yaml",
            {"data": {"path": "churn", "as_of": "2026-12-03T06:17:00"}},
            "environments/prod/churn.yaml: data.as_of: must name its time zone",
        ),
        (
            "environments/prod/environment.yaml",
            {"watch": {"on_drift": "page"}},
            "environments/prod/environment.yaml: watch.on_drift: Input should be 'issue' or "
            "'retrain'",
        ),
        (
            "environments/dev/environment.yaml",
            {"watch": {"on_drift": "retrain"}},
            "environments/dev/environment.yaml: watch.on_drift: retrain rebuilds from the "
            "environment below: this one promotes from none",
        ),
        (
            "environments/prod/environment.yaml",
            {"training": "copy", "watch": {"on_drift": "retrain"}},
            "environments/prod/environment.yaml: watch.on_drift: retrain rebuilds on this "
            "environment's data: training: copy trains on none",
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


PROD_GATES = {
    "metrics": {"auc": {"min": 0.8}, "loss": {"max": 0.4}},
    "no_regression": {"metric": "auc", "tolerance": 0.02},
    "max_artifact_mb": 10,
}


def _gate_prod(layout: Path, manifest_gates: dict[str, object]) -> None:
    """Prod's environment holds PROD_GATES; its churn manifest asks for `manifest_gates`."""
    _write(
        layout, "environments/prod/environment.yaml", {**ENVIRONMENTS["prod"], "gates": PROD_GATES}
    )
    path = layout / "environments/prod/churn.yaml"
    body = yaml.safe_load(path.read_text())
    body["gates"] = manifest_gates
    path.write_text(yaml.safe_dump(body))


def test_a_manifest_can_tighten_every_one_of_its_environments_gates(layout: Path) -> None:
    _gate_prod(
        layout,
        {
            "metrics": {
                "auc": {"min": 0.85, "max": 0.99},
                "loss": {"max": 0.3},
                "f1": {"min": 0.1},
            },
            "no_regression": {"metric": "auc", "tolerance": 0.0, "higher_is_better": True},
            "max_artifact_mb": 5,
        },
    )
    gates = load_repository(layout).spec("prod", "churn").gates
    assert (gates.metrics["auc"].min, gates.metrics["auc"].max) == (0.85, 0.99)
    assert gates.metrics["loss"].max == 0.3 and gates.metrics["f1"].min == 0.1
    assert gates.no_regression is not None and gates.no_regression.tolerance == 0.0
    assert gates.max_artifact_mb == 5


def test_a_manifest_that_repeats_its_environments_gates_or_names_none_gets_them(
    layout: Path,
) -> None:
    for manifest_gates in (PROD_GATES, {}):
        _gate_prod(layout, manifest_gates)
        gates = load_repository(layout).spec("prod", "churn").gates
        assert gates == Gates.model_validate(PROD_GATES)


@pytest.mark.parametrize(
    ("manifest_gates", "message"),
    [
        (
            {"no_regression": {"metric": "auc", "tolerance": 0.03}},
            "gates.no_regression.tolerance: 0.03 loosens environment prod's 0.02",
        ),
        (
            {"no_regression": {"metric": "accuracy", "tolerance": 0.0}},
            "gates.no_regression.metric: 'accuracy' loosens environment prod's 'auc'",
        ),
        (
            {"no_regression": {"metric": "auc", "higher_is_better": False}},
            "gates.no_regression.higher_is_better: False loosens environment prod's True",
        ),
        (
            {"metrics": {"auc": {"min": 0.5}}},
            "gates.metrics.auc.min: 0.5 loosens environment prod's 0.8",
        ),
        # A bound the environment does not set is the manifest's own; the other one still counts.
        (
            {"metrics": {"auc": {"max": 0.99}, "loss": {"min": 0.0, "max": 0.41}}},
            "gates.metrics.loss.max: 0.41 loosens environment prod's 0.4",
        ),
        ({"max_artifact_mb": 10.5}, "gates.max_artifact_mb: 10.5 loosens environment prod's 10.0"),
        (
            {"metrics": {"auc": {"max": 0.7}}},
            "gates.metrics.auc: no value passes: with environment prod's bounds it needs "
            ">= 0.8 and <= 0.7",
        ),
    ],
)
def test_a_manifest_that_loosens_its_environments_gates_is_refused(
    layout: Path, manifest_gates: dict[str, object], message: str
) -> None:
    _gate_prod(layout, manifest_gates)
    assert str(_refused(layout)).startswith(f"environments/prod/churn.yaml: {message}")


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


@pytest.mark.parametrize(
    ("relative", "text", "field"),
    [
        ("environments/prod/churn.yaml", PROD_MANIFEST_TEXT + "model: fraud\n", "model"),
        (
            "environments/prod/churn.yaml",
            PROD_MANIFEST_TEXT + "gates:\n  max_artifact_mb: 10\n  max_artifact_mb: 900\n",
            "gates.max_artifact_mb",
        ),
        (
            "environments/prod/churn.yaml",
            PROD_MANIFEST_TEXT + "gates:\n  metrics:\n    auc: {min: 0.9}\n    auc: {min: 0.1}\n",
            "gates.metrics.auc",
        ),
        ("environments/prod/environment.yaml", "name: prod\nname: prod\n", "name"),
        (
            "environments/prod/environment.yaml",
            "name: prod\npromotes_from: staging\ndata_root: s3://b/p\n"
            "gates: {max_artifact_mb: 10}\n"
            "gates: {}\n",
            "gates",
        ),
        # Equal as values, not as text: YAML reads both as the same key.
        ("environments/dev/environment.yaml", "name: dev\n1: a\n1.0: b\n", "1.0"),
        ("environments/dev/environment.yaml", "name: dev\nyes: a\ntrue: b\n", "True"),
        # What `<<` merges in may be overridden; a merged mapping may not repeat itself.
        ("environments/dev/environment.yaml", "name: dev\nx:\n  <<: {a: 1, a: 2}\n", "x.a"),
        ("environments/dev/environment.yaml", "name: dev\nx: [{a: 1, a: 2}]\n", "x.0.a"),
    ],
)
def test_a_key_named_twice_is_refused_naming_it(
    layout: Path, relative: str, text: str, field: str
) -> None:
    (layout / relative).write_text(text)
    refused = _refused(layout)
    assert (refused.source, refused.field) == (relative, field)
    assert "named twice (again at line " in refused.problem


def test_a_merge_key_may_be_overridden(layout: Path) -> None:
    (layout / "environments/dev/environment.yaml").write_text(
        "<<: {name: qa, data_root: data/dev}\nname: dev\n"
    )
    assert load_repository(layout).environment("dev").data_root == "data/dev"


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        "a: " + "{a: " * 50_000 + "1" + "}" * 50_000,
        "a:\n" + "".join(f"{' ' * i}- \n" for i in range(1, 1000)),
        "a: " + "[" * 33 + "]" * 33,
    ],
)
def test_deeply_nested_yaml_is_refused_without_a_recursion_error(layout: Path, text: str) -> None:
    (layout / "environments/prod/churn.yaml").write_text(text)
    refused = _refused(layout)
    assert str(refused) == "environments/prod/churn.yaml: nested deeper than 32 levels"


def test_nesting_up_to_the_bound_parses(layout: Path) -> None:
    path = layout / "environments/prod/churn.yaml"
    path.write_text(PROD_MANIFEST_TEXT + "extra: " + "[" * 31 + "]" * 31 + "\n")
    assert _refused(layout).field == "extra"  # parsed, then refused by the schema
    path.write_text(PROD_MANIFEST_TEXT + "extra: " + "[" * 32 + "]" * 32 + "\n")
    assert _refused(layout).problem == "nested deeper than 32 levels"


@pytest.mark.parametrize(
    "value", ["!!int abc", "!!float x", "!!bool maybe", "!!timestamp soon", "!!int 0b2"]
)
def test_a_value_its_explicit_tag_cannot_read_is_invalid_yaml(layout: Path, value: str) -> None:
    (layout / "environments/prod/churn.yaml").write_text(f"model: {value}\n")
    assert _refused(layout).problem.startswith("invalid YAML at line 1: a value that is not a")


def test_a_yaml_file_over_the_size_bound_is_refused(layout: Path) -> None:
    path = layout / "environments/prod/churn.yaml"
    # Exactly at the bound it loads: the padding is a comment.
    padding = MAX_YAML_BYTES - len(PROD_MANIFEST_TEXT.encode()) - 2
    path.write_text(PROD_MANIFEST_TEXT + "#" + "x" * padding + "\n")
    assert path.stat().st_size == MAX_YAML_BYTES
    assert load_repository(layout).spec("prod", "churn").managed
    path.write_text(PROD_MANIFEST_TEXT + "#" + "x" * (padding + 1) + "\n")
    assert str(_refused(layout)) == (
        "environments/prod/churn.yaml: larger than 1 MiB, the bound on a YAML file"
    )
    env = layout / "environments/prod/environment.yaml"
    env.write_text(env.read_text() + "#" + "é" * MAX_YAML_BYTES + "\n")
    assert _refused(layout).source == "environments/prod/environment.yaml"


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(layout: Path) -> None:
    os.mkfifo(layout / "environments/prod/fraud.yaml")
    assert str(_refused(layout)) == "environments/prod/fraud.yaml: is not a regular file"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the repository, holding a valid copy of the prod manifest."""
    folder = tmp_path.parent / f"{tmp_path.name}-outside"
    folder.mkdir()
    (folder / "churn.yaml").write_text(PROD_MANIFEST_TEXT)
    return folder


def test_a_manifest_symlinked_outside_the_repository_is_refused(
    layout: Path, outside: Path
) -> None:
    path = layout / "environments/prod/churn.yaml"
    path.unlink()
    path.symlink_to(outside / "churn.yaml")
    assert str(_refused(layout)) == (
        "environments/prod/churn.yaml: leads outside the repository through a symlink"
    )
    # Through a chain of links, the last one leading out.
    (layout / "shared").mkdir()
    (layout / "shared/churn.yaml").symlink_to(outside / "churn.yaml")
    path.unlink()
    path.symlink_to(layout / "shared/churn.yaml")
    assert _refused(layout).source == "environments/prod/churn.yaml"


def test_a_manifest_symlinked_inside_the_repository_loads(layout: Path) -> None:
    path = layout / "environments/prod/churn.yaml"
    (layout / "shared").mkdir()
    path.rename(layout / "shared/churn.yaml")
    path.symlink_to(Path("../../shared/churn.yaml"))
    assert load_repository(layout).spec("prod", "churn").managed


def test_an_environment_file_or_folder_symlinked_outside_is_refused(
    layout: Path, outside: Path
) -> None:
    env_file = layout / "environments/prod/environment.yaml"
    (outside / "environment.yaml").write_text(env_file.read_text())
    env_file.unlink()
    env_file.symlink_to(outside / "environment.yaml")
    expected = "environments/prod/environment.yaml: leads outside the repository through a symlink"
    assert str(_refused(layout)) == expected
    env_file.unlink()
    (layout / "environments/prod/churn.yaml").unlink()
    (layout / "environments/prod").rmdir()
    (layout / "environments/prod").symlink_to(outside)
    assert str(_refused(layout)) == expected


@pytest.mark.parametrize(
    ("relative", "gates"),
    [
        ("environments/prod/churn.yaml", "{metrics: {auc: {min: .nan}}}"),
        ("environments/prod/churn.yaml", "{metrics: {auc: {max: .inf}}}"),
        ("environments/prod/churn.yaml", "{metrics: {auc: {min: -.inf}}}"),
        ("environments/prod/churn.yaml", "{no_regression: {metric: auc, tolerance: .inf}}"),
        ("environments/prod/churn.yaml", "{no_regression: {metric: auc, tolerance: .NaN}}"),
        ("environments/prod/churn.yaml", "{max_artifact_mb: .inf}"),
        ("environments/prod/environment.yaml", "{max_artifact_mb: .nan}"),
        ("environments/prod/environment.yaml", "{metrics: {auc: {max: .Inf}}}"),
    ],
)
def test_thresholds_tolerances_and_budgets_must_be_finite(
    layout: Path, relative: str, gates: str
) -> None:
    path = layout / relative
    path.write_text(path.read_text() + f"gates: {gates}\n")
    refused = _refused(layout)
    assert refused.source == relative and refused.field is not None
    assert (
        refused.field.startswith("gates.") and refused.problem == "Input should be a finite number"
    )


@pytest.mark.parametrize(
    "template",
    [
        "{env.__class__}.{model}",
        "{env}.{model.__class__.__init__.__globals__}",
        "{env[0]}.{model}",
        "{}.{env}.{model}",
        "{0}.{env}.{model}",
        "{env!r}.{model}",
        "{env:>200}.{model}",
        "{env:{model}}.{model}",
        "{env}.{model}{",
        "{env}.{model}}",
        "{env}/{model}",
        "{env}:{model}",
        "{env}@{model}",
        "{env} {model}",
        "{env}.{model}\n",
        ".{env}.{model}",
        "..{env}.{model}",
        "{{env}}.{model}",
        "{env}.{model}.é",
    ],
)
def test_model_name_templates_hold_env_and_model_and_render_a_plain_name(
    layout: Path, template: str
) -> None:
    _write(
        layout,
        "environments/prod/environment.yaml",
        {**ENVIRONMENTS["prod"], "model_name": template},
    )
    refused = _refused(layout)
    assert (refused.source, refused.field) == ("environments/prod/environment.yaml", "model_name")


@pytest.mark.parametrize("template", ["{model}.{env}", "ml-{env}_{model}-v1", "{env}{model}"])
def test_other_plain_model_name_templates_are_accepted(layout: Path, template: str) -> None:
    _write(
        layout,
        "environments/prod/environment.yaml",
        {**ENVIRONMENTS["prod"], "model_name": template},
    )
    repo = load_repository(layout)
    assert repo.registered_name("prod", "churn") == template.format(env="prod", model="churn")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        # The lock of a model named `prod.churn` in an environment that names models plainly.
        (
            "promote-lock.{env}.{model}",
            "registers as 'promote-lock.prod.churn': names starting 'promote-lock.' are "
            "promote's locks",
        ),
        ("x" * 192 + "{env}{model}", "registers as a name of 201 characters, over 200"),
    ],
)
def test_a_registered_name_promote_cannot_use_is_refused(
    layout: Path, template: str, problem: str
) -> None:
    _write(
        layout,
        "environments/prod/environment.yaml",
        {**ENVIRONMENTS["prod"], "model_name": template},
    )
    refused = _refused(layout)
    assert (refused.source, refused.field) == ("environments/prod/churn.yaml", "model")
    assert refused.problem == f"{problem} (model_name of prod)", refused.problem


def test_two_manifests_that_register_as_one_name_are_refused(layout: Path) -> None:
    """dev's `staging` model and staging's `dev` model would share `dev.staging`: one
    environment's pipeline would write the other's versions and champion."""
    _write(
        layout,
        "environments/staging/environment.yaml",
        {**ENVIRONMENTS["staging"], "model_name": "{model}.{env}"},
    )
    _write(
        layout,
        "environments/dev/staging.yaml",
        {"model": "staging", "code": {"entrypoint": "t.py"}, "data": {"path": "x"}},
    )
    _write(
        layout,
        "environments/staging/dev.yaml",
        {
            "model": "dev",
            "source": {"environment": "dev", "version": 1},
            "code": {"commit": COMMIT, "entrypoint": "t.py"},
            "data": {"path": "x"},
        },
    )
    assert str(_refused(layout)) == (
        "environments/staging/dev.yaml: model: registers as 'dev.staging', as "
        "environments/dev/staging.yaml does (model_name of staging)"
    )


def test_a_relative_interpreter_path_is_refused_on_load(layout: Path) -> None:
    body = {**ENVIRONMENTS["staging"], "python": ".venv/bin/python"}
    _write(layout, "environments/staging/environment.yaml", body)
    assert str(_refused(layout)) == (
        "environments/staging/environment.yaml: python: "
        "'.venv/bin/python' must be an absolute path or a command on PATH"
    )


@pytest.mark.parametrize("python", ["/nonexistent/bin/python3", "no-such-python-3.99", ""])
def test_an_interpreter_this_machine_lacks_loads_but_is_refused_before_training(
    layout: Path, python: str
) -> None:
    """A laptop's plan need not have CI's interpreter; a training here does."""
    body = {**ENVIRONMENTS["staging"], "python": python}
    _write(layout, "environments/staging/environment.yaml", body)
    config = load_repository(layout).environment("staging")
    with pytest.raises(InputError) as refused:
        check_interpreter(config)
    assert str(refused.value) == (
        f"environments/staging/environment.yaml: python: {python!r} is not an executable "
        "on this machine"
    )


def test_an_interpreter_is_an_executable_file_or_a_command_on_path(
    layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def set_python(python: str) -> EnvironmentConfig:
        body = {**ENVIRONMENTS["staging"], "python": python}
        _write(layout, "environments/staging/environment.yaml", body)
        return load_repository(layout).environment("staging")

    script = layout / "python"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(InputError):  # there, but not executable
        check_interpreter(set_python(str(script)))
    script.chmod(0o755)
    check_interpreter(set_python(str(script)))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    check_interpreter(set_python(Path(sys.executable).name))


@pytest.mark.parametrize("data_root", ["../data", "/srv/data", "data/../../data", "."])
def test_a_local_data_root_outside_the_repository_needs_the_opt_in(
    layout: Path, data_root: str
) -> None:
    def set_dev(**fields: object) -> None:
        _write(layout, "environments/dev/environment.yaml", {**ENVIRONMENTS["dev"], **fields})

    set_dev(data_root=data_root)
    if data_root == ".":  # the repository itself is inside it
        assert load_repository(layout).environment("dev").data_root == "."
        return
    assert str(_refused(layout)) == (
        f"environments/dev/environment.yaml: data_root: {data_root!r} is outside the repository "
        "(set allow_data_outside_repository: true if it is meant to be)"
    )
    set_dev(data_root=data_root, allow_data_outside_repository=True)
    assert load_repository(layout).environment("dev").allow_data_outside_repository


def test_a_data_root_symlinked_outside_the_repository_needs_the_opt_in(
    layout: Path, outside: Path
) -> None:
    (layout / "data").mkdir()
    (layout / "data/dev").symlink_to(outside)
    assert _refused(layout).field == "data_root"
    (layout / "data/dev").unlink()
    (layout / "data/dev").mkdir()
    assert load_repository(layout).environment("dev").data_root == "data/dev"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.Inf"])
def test_params_must_be_finite(layout: Path, value: str) -> None:
    path = layout / "environments/prod/churn.yaml"
    path.write_text(path.read_text().replace("C: 1", f"C: {value}"))
    refused = _refused(layout)
    assert refused.source == "environments/prod/churn.yaml" and refused.field == "code.params"
    assert refused.problem.startswith("parameter 'C' must be a finite number")
