"""A hostile registry: versions, tags and records forged with the plain MLflow client and the
artifact store. Each must be reported by plain `status`, refused by `verify`, and never become
(or stay) champion through `apply`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from support.world import MODEL, World

from promote.build.digest import artifact_digest
from promote.build.lineage import LINEAGE_ARTIFACT, MODEL_SIGNATURE_ARTIFACT
from promote.manifests.loader import load_repository
from promote.proof import keys
from promote.registry.entities import (
    CHAMPION,
    TAG_ARTIFACT_DIGEST,
    TAG_CHAMPION_FROM,
    TAG_DIRTY,
    TAG_EXPECTED_CHAMPION,
    TAG_VERDICT,
    TAG_VERIFICATION,
    VERDICT_PASSED,
    Version,
)
from promote.train import train

PROD = f"prod.{MODEL}"


def _champion(world: World, name: str = PROD) -> Version:
    model = world.registry.model(name)
    assert model is not None and model.champion is not None
    return model.champion


def _local(uri: str) -> Path:
    return Path(unquote(urlsplit(uri).path))


def _status(world: World) -> dict[str, dict[str, object]]:
    result = world.cli("status", "--json")
    rows = {row["registered_model"]: row for row in json.loads(result.stdout)}
    assert result.returncode == 1, result.stdout  # drift is reported with exit 1
    return rows


def _tampered_copy(world: World, champion: Version, scratch: Path) -> tuple[str, str, str]:
    """A new run holding the champion's model with one byte changed: run id, model URI and
    the tampered model's digest."""
    client = world.registry.client
    model_dir = world.registry.download_model(champion, scratch / "download")
    victim = next(p for p in sorted(model_dir.rglob("*")) if p.suffix in (".pkl", ".skops"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    experiment = client.get_run(champion.run_id).info.experiment_id
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    return run.info.run_id, f"{run.info.artifact_uri}/model", artifact_digest(model_dir)


def test_a_rogue_version_with_copied_tags_is_forged_and_never_champion(
    promoted: World, tmp_path: Path
) -> None:
    client = promoted.registry.client
    champion = _champion(promoted)
    run_id, source, rogue_digest = _tampered_copy(promoted, champion, tmp_path)
    tags = {**champion.tags, TAG_ARTIFACT_DIGEST: rogue_digest}
    client.create_model_version(PROD, source, run_id, tags=tags)
    client.set_registered_model_tag(PROD, TAG_EXPECTED_CHAMPION, "2")
    client.set_registered_model_tag(PROD, TAG_CHAMPION_FROM, "1")

    drift = _status(promoted)[PROD]["drift"]
    assert f"v2 is forged: provenance is for run {champion.run_id[:8]}, not {run_id[:8]}" in drift
    assert promoted.cli("verify", MODEL, "--env", "prod", "--version", "2").returncode == 1

    # apply does not take the bait: the signed v1 is the manifest's only passed version.
    outcome = promoted.pipeline().apply("prod")
    assert outcome.ok
    assert _champion(promoted).version == 1
    # Even with the alias moved onto it by hand, apply moves champion back to the signed v1.
    client.set_registered_model_alias(PROD, CHAMPION, "2")
    assert "champion v2 is forged" in " ".join(_status(promoted)[PROD]["drift"])
    assert promoted.pipeline().apply("prod").ok
    assert _champion(promoted).version == 1


def test_a_clone_on_the_champions_run_is_a_forged_copy(promoted: World) -> None:
    champion = _champion(promoted)
    promoted.registry.client.create_model_version(
        PROD, champion.source, champion.run_id, tags=champion.tags
    )
    drift = _status(promoted)[PROD]["drift"]
    assert drift == [f"v2 is forged: a copy of v1 (same run {champion.run_id[:8]})"]


def test_an_edited_digest_tag_over_a_tampered_artifact_is_reported_and_refused(
    promoted: World, tmp_path: Path
) -> None:
    champion = _champion(promoted)
    stored = _local(champion.source)
    victim = next(p for p in sorted(stored.rglob("*")) if p.suffix in (".pkl", ".skops"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    promoted.registry.client.set_model_version_tag(
        PROD, "1", TAG_ARTIFACT_DIGEST, artifact_digest(stored)
    )
    drift = _status(promoted)[PROD]["drift"]
    assert drift == [
        f"champion v1 is forged: tag {TAG_ARTIFACT_DIGEST} differs from the signed provenance"
    ]
    verified = promoted.cli("verify", MODEL, "--env", "prod", "--json")
    assert verified.returncode == 1
    failed = {c["name"] for c in json.loads(verified.stdout)["checks"] if not c["passed"]}
    assert failed == {
        "signed provenance",
        "signed verification",
        "artifact digest",
        "model signature",
        "lineage record",
    }


def test_a_lineage_record_edited_with_its_digest_recomputed_fails_verify(
    promoted: World,
) -> None:
    champion = _champion(promoted)
    run = promoted.registry.client.get_run(champion.run_id)
    record_path = _local(run.info.artifact_uri) / LINEAGE_ARTIFACT
    record = json.loads(record_path.read_text())
    record["artifact_digest"] = "0" * 64
    record.pop("lineage_digest")
    from promote.manifests.digest import canonical_digest

    record["lineage_digest"] = canonical_digest(record)
    record_path.write_text(json.dumps(record))
    result = promoted.cli("verify", MODEL, "--env", "prod")
    assert result.returncode == 1
    assert "FAIL lineage record: lineage record's artifact_digest differs" in result.stdout


def test_a_rejected_version_flipped_to_passed_is_not_believed(promoted: World) -> None:
    client = promoted.registry.client
    champion = _champion(promoted)
    # The signed summary removed, the verdict tag left "passed" (as on a rejected version
    # whose verdict tag was edited: it never had a summary).
    client.delete_model_version_tag(PROD, "1", TAG_VERIFICATION)
    drift = _status(promoted)[PROD]["drift"]
    assert drift == [f"champion v{champion.version} claims passed: no signed verification"]


def test_a_dirty_build_cannot_be_made_clean_by_flipping_its_tags(trained: World) -> None:
    (trained.repo / "models" / MODEL / "train.py").write_text(
        (trained.repo / "models" / MODEL / "train.py").read_text() + "\n# uncommitted\n"
    )
    outcome = train(load_repository(trained.repo), trained.registry, MODEL, "dev", {})
    assert not outcome.ok and outcome.version == 2
    client = trained.registry.client
    client.set_model_version_tag(f"dev.{MODEL}", "2", TAG_DIRTY, "false")
    client.set_model_version_tag(f"dev.{MODEL}", "2", TAG_VERDICT, VERDICT_PASSED)
    client.set_registered_model_alias(f"dev.{MODEL}", CHAMPION, "2")
    drift = _status(trained)[f"dev.{MODEL}"]["drift"]
    assert f"champion v2 is forged: tag {TAG_DIRTY} differs from the signed provenance" in drift
    proposed = trained.cli("model", MODEL, "--to", "staging")
    assert proposed.returncode == 2
    assert "the champion is forged" in proposed.stderr


def test_apply_without_the_environments_private_key_is_refused_unwritten(
    trained: World, tmp_path: Path
) -> None:
    trained.propose_and_merge("staging")
    before = trained.snapshot()
    result = trained.cli(
        "apply", "--env", "staging", env={keys.KEY_FOLDER_VARIABLE: str(tmp_path / "empty")}
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: environments/staging/environment.yaml: signing: no private key")
    assert trained.snapshot() == before


def test_standard_tools_verify_the_model_signature(promoted: World, tmp_path: Path) -> None:
    champion = _champion(promoted)
    model_dir = promoted.registry.download_model(champion, tmp_path / "model")
    signature = promoted.registry.download_model_signature(champion.run_id, tmp_path / "sig")
    assert signature is not None and signature.name == Path(MODEL_SIGNATURE_ARTIFACT).name
    public = tmp_path / "prod.pub"
    config = promoted.pipeline().repo.environment("prod")
    public.write_text(config.signing.public_keys[0])

    def model_signing(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "model_signing",
                "verify",
                "key",
                "--signature",
                str(signature),
                "--public_key",
                str(public),
                str(folder),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    assert model_signing(model_dir).returncode == 0
    tampered = tmp_path / "tampered"
    shutil.copytree(model_dir, tampered)
    first = next(p for p in sorted(tampered.rglob("*")) if p.is_file())
    first.write_bytes(first.read_bytes() + b"\0")
    assert model_signing(tampered).returncode != 0


def test_a_poisoned_verification_cache_cannot_steer_apply(promoted: World, tmp_path: Path) -> None:
    from promote.proof.cache import cache_path
    from promote.proof.trust import Keyring
    from promote.proof.versions import _cache_key

    client = promoted.registry.client
    champion = _champion(promoted)
    run_id, source, rogue_digest = _tampered_copy(promoted, champion, tmp_path)
    tags = {**champion.tags, TAG_ARTIFACT_DIGEST: rogue_digest}
    client.create_model_version(PROD, source, run_id, tags=tags)
    client.set_registered_model_tag(PROD, TAG_EXPECTED_CHAMPION, "2")
    rogue = promoted.registry.model(PROD)
    forged = rogue.version(2) if rogue else None
    assert forged is not None
    trust = Keyring(promoted.pipeline().repo.environments).trust("prod")
    path = cache_path()
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(f"{_cache_key(forged, trust)}:p\n")
    result = promoted.pipeline().apply("prod")
    # Under the lock apply decides without the cache: it never even tries the forged v2
    # (which Promoter.verified would refuse, failing the outcome), it repairs toward v1.
    assert result.ok, [o.detail for o in result.outcomes]
    assert [(o.action, o.version) for o in result.outcomes] == [("repair", 1)]
    assert _champion(promoted).version == 1
