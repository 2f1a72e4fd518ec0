"""Paths and names from manifests stay inside the checkout and never reach a shell; YAML is
loaded safely. Each refusal is exit 2, one line, and nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.world import MODEL, World, link_script_outside

from promote.errors import InputError
from promote.manifests.loader import load_repository

DEV_MANIFEST = f"environments/dev/{MODEL}.yaml"


def _set_entrypoint(value: str) -> Any:
    return lambda body: body["code"].update(entrypoint=value)


def _assert_refused_cleanly(world: World, completed: Any, field: str) -> None:
    assert completed.returncode == 2, completed.stderr
    # Progress lines may come first; the refusal itself is one line.
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and field in errors[0], completed.stderr
    assert completed.stderr.rstrip().endswith(errors[0])
    assert "Traceback" not in completed.stderr
    assert not (world.repo / ".promote").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entrypoint", "../outside.py"),
        ("entrypoint", "models/../../outside.py"),
        ("entrypoint", "/tmp/outside.py"),
        ("entrypoint", "~/outside.py"),
        ("entrypoint", "models\\..\\..\\outside.py"),
        ("data", "../prod"),
        ("data", "/srv/prod-data"),
    ],
)
def test_paths_leaving_the_checkout_are_refused_on_load(
    world: World, field: str, value: str
) -> None:
    def change(body: dict[str, Any]) -> None:
        if field == "entrypoint":
            body["code"]["entrypoint"] = value
        else:
            body["data"]["path"] = value

    world.edit_yaml(DEV_MANIFEST, change)
    with pytest.raises(InputError) as refused:
        load_repository(world.repo)
    assert refused.value.source == DEV_MANIFEST
    assert refused.value.field == ("code.entrypoint" if field == "entrypoint" else "data.path")


@pytest.mark.parametrize(
    "name", ["../prod/churn", "/etc/churn", "churn; touch pwned", "$(id)", "Churn"]
)
def test_model_names_that_are_not_plain_names_are_refused(world: World, name: str) -> None:
    world.edit_yaml(DEV_MANIFEST, lambda body: body.update(model=name))
    with pytest.raises(InputError) as refused:
        load_repository(world.repo)
    assert refused.value.field == "model"


def test_an_entrypoint_symlinked_out_of_the_checkout_is_refused(
    world: World, tmp_path: Path
) -> None:
    canary = link_script_outside(world.repo, tmp_path)
    world.edit_yaml(DEV_MANIFEST, _set_entrypoint(f"models/{MODEL}/linked.py"))

    completed = world.cli("train", MODEL, "--env", "dev")
    _assert_refused_cleanly(world, completed, "leads outside the checkout")
    assert not canary.exists()


def test_names_from_the_command_line_never_reach_a_shell(world: World) -> None:
    completed = world.cli("train", f"{MODEL}; touch pwned", "--env", "dev")
    _assert_refused_cleanly(world, completed, "no such manifest")
    assert not (world.repo / "pwned").exists()


@pytest.mark.parametrize("target", [DEV_MANIFEST, "environments/dev/environment.yaml"])
def test_yaml_is_loaded_safely(world: World, target: str) -> None:
    (world.repo / target).write_text("!!python/object/apply:os.system ['touch pwned']\n")
    completed = world.cli("plan")
    _assert_refused_cleanly(world, completed, f"{target}: invalid YAML")
    assert not (world.repo / "pwned").exists()


def test_parameters_reach_the_training_as_data_not_as_a_command(world: World) -> None:
    """A rebuild passes parameters as JSON in one variable and runs the interpreter directly."""
    payload = "$(touch pwned); `touch pwned`; touch pwned"
    world.edit_yaml(DEV_MANIFEST, lambda body: body["code"]["params"].update(note=payload))
    version = world.train_dev()
    model = world.registry.model(f"dev.{MODEL}")
    assert model is not None and model.champion is not None and model.champion.version == version
    assert world.registry.lineage(model.champion.run_id).params["note"] == payload
    assert not list(world.repo.rglob("pwned")) and not (world.sandbox.root / "pwned").exists()
