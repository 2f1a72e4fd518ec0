"""`promote keygen`: a new environment key, its private half kept out of the repository."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import yaml
from support.files import file_states
from support.world import World

from promote.proof.keys import key_id, public_key


def test_keygen_adds_a_public_key_to_the_environment_and_keeps_the_private_one_out(
    world: World,
) -> None:
    environment = world.repo / "environments" / "staging" / "environment.yaml"
    before = yaml.safe_load(environment.read_text())["signing"]["public_keys"]
    made = world.cli("keygen", "--env", "staging", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    after = yaml.safe_load(environment.read_text())["signing"]["public_keys"]
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert key_id(public_key(after[-1])) == created["key_id"]
    private = Path(created["private_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert not private.resolve().is_relative_to(world.repo.resolve())
    assert created["public_key_added_to"] == "environments/staging/environment.yaml"


def test_keygen_for_an_unknown_environment_writes_nothing(world: World) -> None:
    keys = Path(os.environ["PROMOTE_KEY_DIR"])
    before = sorted(keys.iterdir()), file_states(world.sandbox.root)
    refused = world.cli("keygen", "--env", "qa")
    assert refused.returncode == 2 and "qa" in refused.stderr
    assert (sorted(keys.iterdir()), file_states(world.sandbox.root)) == before
