"""`promote status` and `promote plan` over 1,000 and 10,000 models x 3 environments, on sqlite.

For each size: a GitOps repository with one manifest per model and environment, and a sqlite
registry in the state the pipeline leaves (champion built from the manifest, every 10th model
with a previous version, every 100th prod champion moved by hand: drift). MLflow creates the
schema; the rows are bulk-inserted, then a sample is read back through MlflowClient.

Measured: loading the manifests, the bulk registry read (and its SQL statements), the library
call behind status/plan, the CLI in a subprocess (its first run with nothing validated yet, as
after a clone, then the best of five), and the client-only baselines: MLflow's search API paged
(in full) and one read per model (on a sample, extrapolated). Then the registry is changed
behind the tool's back, and status must see it. Every model has a data file whose listing its
champion recorded, so status lists each environment's data root and compares them all; one
file changed must show as data changed.

    python benchmarks/state_scale.py [--quick] [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from figures import Table, as_installed, seconds, timed

from promote.build.listing import list_location, listing_tag, tag_digest
from promote.manifests.loader import load_repository
from promote.manifests.repository import Repository
from promote.plan import compute, survey
from promote.proof import dsse
from promote.proof.keys import PrivateKey, public_pem
from promote.proof.statement import Claims, verification_summary
from promote.registry import paged, sql
from promote.registry.client import Registry
from promote.registry.entities import (
    CHAMPION,
    PREVIOUS,
    TAG_DATA_LISTING,
    TAG_EXPECTED_CHAMPION,
    TAG_EXPECTED_PREVIOUS,
    TAG_MANAGED,
    TAG_MANIFEST_DIGEST,
    TAG_PROVENANCE,
    TAG_VERDICT,
    TAG_VERIFICATION,
)

ENVIRONMENTS = (("dev", None), ("staging", "dev"), ("prod", "staging"))
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TARGET_SECONDS = 3.0
DRIFT_EVERY = 100  # every 100th prod champion is moved by hand
TWO_VERSIONS_EVERY = 10  # every 10th model has a previous version
PER_MODEL_SAMPLE = 300


SIGNING_KEY = PrivateKey.from_pem(
    ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
)


def write_repository(root: Path, models: int) -> None:
    """environments/<env>/environment.yaml and one manifest per model, in plain text (fast)."""
    public = public_pem(SIGNING_KEY.key.public_key()).strip().replace("\n", "\n      ")
    for environment, promotes_from in ENVIRONMENTS:
        folder = root / "environments" / environment
        folder.mkdir(parents=True)
        upstream = f"promotes_from: {promotes_from}\n" if promotes_from else ""
        (folder / "environment.yaml").write_text(
            f"name: {environment}\n{upstream}data_root: data/{environment}\n"
            "gates: {metrics: {roc_auc: {min: 0.6}}}\n"
            f"signing:\n  public_keys:\n    - |\n      {public}\n"
        )
        for index in range(models):
            model = model_name(index)
            pinned = (
                f"source: {{environment: {promotes_from}, version: {champion_version(index)}}}\n"
                if promotes_from
                else ""
            )
            commit = f"  commit: {COMMIT}\n" if promotes_from else ""
            (folder / f"{model}.yaml").write_text(
                f"model: {model}\n{pinned}code:\n  repo: .\n{commit}"
                f"  entrypoint: models/{model}/train.py\n"
                "  params: {C: 0.5, max_iter: 300}\n"
                f"data:\n  path: {model}\n"
                "gates:\n  metrics: {roc_auc: {min: 0.7}}\n"
            )
            data = root / "data" / environment / model
            data.mkdir(parents=True)
            (data / "train.csv").write_text("x,y\n1,0\n2,1\n")


def data_file(root: Path, environment: str, model: str) -> Path:
    return root / "data" / environment / model / "train.csv"


def recorded_listing(root: Path, environment: str, model: str) -> str:
    """The listing tag a training of `model` would have recorded: its one file, as it is now."""
    files = list_location(str(data_file(root, environment, model).parent))
    return listing_tag(files, {"train.csv": 2})


def model_name(index: int) -> str:
    return f"m{index:05d}"


def champion_version(index: int) -> int:
    return 2 if index % TWO_VERSIONS_EVERY == 0 else 1


def drifted(environment: str, index: int) -> bool:
    return environment == "prod" and index % DRIFT_EVERY == 0


def fill_registry(path: Path, repo: Repository) -> None:
    """Bulk-insert the rows the pipeline would have written, straight into MLflow's tables."""
    models, versions, aliases, model_tags, version_tags = [], [], [], [], []
    upstream = dict(ENVIRONMENTS)
    for (environment, model), spec in repo.specs.items():
        name = f"{environment}.{model}"
        index = int(model[1:])
        champion = champion_version(index)
        models.append((name,))
        model_tags += [(name, TAG_MANAGED, "true"), (name, TAG_EXPECTED_CHAMPION, str(champion))]
        event = {"action": "promote", "version": champion, "manifest_digest": spec.digest}
        model_tags.append((name, "promote.event.00000000000000000001.abcdef01", json.dumps(event)))
        listing = recorded_listing(repo.root, environment, model)
        for number in range(1, champion + 1):
            source = f"file:///artifacts/{name}/{number}"
            run_id = f"{index:016x}{number:016x}"
            versions.append((name, number, source, run_id))
            version_tags += [
                (name, number, key, value)
                for key, value in signed_tags(
                    Claims(
                        registered_name=name,
                        artifact_digest="a" * 64,
                        artifact_uri=source,
                        run_id=run_id,
                        environment=environment,
                        model=model,
                        code_repo=".",
                        commit=COMMIT,
                        tree="d" * 40,
                        dirty=False,
                        entrypoint=f"models/{model}/train.py",
                        params={"C": 0.5, "max_iter": 300},
                        libraries_digest="e" * 64,
                        python_version="3.11.7",
                        data_uri=f"data/{environment}/{model}",
                        data_digest="c" * 64,
                        manifest_digest=(
                            spec.digest if number == champion else f"an-older-manifest-{number}"
                        ),
                        source=(
                            f"{upstream[environment]}.{model}/{champion}"
                            if upstream[environment]
                            else ""
                        ),
                        lineage_digest="b" * 64,
                        invocation="benchmark@host",
                        copied_from=None,
                        data_listing_digest=tag_digest(listing),
                    ),
                    number,
                ).items()
            ]
            version_tags.append((name, number, TAG_DATA_LISTING, listing))
        live = 1 if drifted(environment, index) and champion == 2 else champion
        aliases.append((name, CHAMPION, live))
        if champion == 2:
            aliases.append((name, PREVIOUS, 1))
            model_tags.append((name, TAG_EXPECTED_PREVIOUS, "1"))
    # The times MLflow's server needs to answer a search (the direct read never looks at them).
    now = int(time.time() * 1000)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO registered_models (name, creation_time, last_updated_time)"
            f" VALUES (?, {now}, {now})",
            models,
        )
        db.executemany(
            "INSERT INTO model_versions (name, version, source, run_id, current_stage, status,"
            " creation_time, last_updated_time)"
            f" VALUES (?, ?, ?, ?, 'None', 'READY', {now}, {now})",
            versions,
        )
        db.executemany(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES (?, ?, ?)", aliases
        )
        db.executemany(
            "INSERT INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)", model_tags
        )
        db.executemany(
            "INSERT INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)",
            version_tags,
        )


def signed_tags(claims: Claims, number: int) -> dict[str, str]:
    """The tags the pipeline writes on a version that passed: claims, provenance, summary."""

    def sign(statement: dict[str, Any]) -> str:
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        return dsse.sign(payload, SIGNING_KEY.key, SIGNING_KEY.key_id)

    provenance = sign(claims.statement())
    summary = verification_summary(claims.registered_name, number, claims, provenance)
    return {
        **claims.tags(),
        TAG_PROVENANCE: provenance,
        TAG_VERIFICATION: sign(summary),
        TAG_VERDICT: "passed",
    }


def check_through_client(registry: Registry, repo: Repository, sample: list[str]) -> None:
    """The bulk-inserted rows read back through MlflowClient as the pipeline's own would."""
    for name in sample:
        environment, _, model = name.partition(".")
        index = int(model[1:])
        entity = registry.client.get_registered_model(name)
        champion = int(entity.aliases[CHAMPION])
        expected = 1 if drifted(environment, index) else champion_version(index)
        assert champion == expected, (name, entity.aliases)
        versions = registry.client.search_model_versions(f"name = '{name}'")
        tags = {int(v.version): v.tags for v in versions}
        assert sorted(tags) == list(range(1, champion_version(index) + 1)), name
        digest = repo.specs[(environment, model)].digest
        assert tags[champion_version(index)][TAG_MANIFEST_DIGEST] == digest, name
    assert registry.models(sample) == {name: registry.model(name) for name in sample}


def cli(root: Path, uri: str, *command: str) -> tuple[int, float]:
    """`promote COMMAND` as a user runs it, in a subprocess: exit code and wall time."""

    def run() -> int:
        return subprocess.run(
            [sys.executable, "-m", "promote", "--repo", str(root), "--registry", uri, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            env=as_installed(),
        ).returncode

    return timed(run)


def best_cli(root: Path, uri: str, command: str) -> tuple[int, float]:
    """The fastest of five runs: the figure least disturbed by the rest of the machine."""
    runs = [cli(root, uri, command) for _ in range(5)]
    return runs[0][0], min(wall for _, wall in runs)


def after_a_clone_with_the_facts_index(root: Path, uri: str, work: Path) -> tuple[int, float]:
    """`promote status` as a pull request's plan job runs it: a fresh checkout at the runner's
    usual path, and the cache the protected branch's plan saved, restored (promote-plan.yml)."""
    cache = Path(os.environ["XDG_CACHE_HOME"])
    saved = work / "facts-index"
    shutil.copytree(cache, saved)
    checkout = work / "checkout"
    shutil.copytree(root, checkout)  # new files with the same bytes, as a clone writes them
    shutil.rmtree(root)
    checkout.rename(root)
    shutil.rmtree(cache)
    saved.rename(cache)
    return cli(root, uri, "status")


def template_registry(folder: Path) -> Path:
    """An empty registry with the schema MLflow creates (once per run; the migrations are slow)."""
    path = folder / "template.db"
    Registry(f"sqlite:///{path}", folder / "artifacts").client.search_registered_models()
    return path


def measure(models: int, template: Path, work: Path, quick: bool) -> None:
    root = work / f"repo-{models}"
    write_repository(root, models)
    database = root / ".promote" / "registry.db"
    database.parent.mkdir(parents=True)
    shutil.copyfile(template, database)
    uri = f"sqlite:///{database}"

    fill_registry(database, load_repository(root))
    # As after a fresh clone (or on a CI runner): nothing validated yet.
    shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]), ignore_errors=True)
    first_code, first_cli = cli(root, uri, "status")
    repo, load_time = timed(lambda: load_repository(root))
    registry = Registry.for_repository(root, uri)
    names = sorted(f"{env}.{model}" for env, model in repo.specs)
    check_through_client(registry, repo, random.Random(5).sample(names, 25))

    sent: list[str] = []
    bulk, bulk_time = timed(lambda: sql.read_sql(uri, names, sent.append))
    statements = len(sent)
    assert bulk == registry.models(names)
    assert len(bulk) == len(names)
    fresh = Registry(uri, registry.default_artifact_root)  # as the CLI starts: no client yet
    # What `promote status` runs: the states, the undeclared models and the data listings.
    states, status_time = timed(lambda: survey(load_repository(root), fresh)[0])
    assert not any(s.data_changed for s in states)
    drift = sum(1 for s in states if s.drift)
    expected_drift = sum(
        1 for i in range(models) if drifted("prod", i) and champion_version(i) == 2
    )
    assert drift == expected_drift, (drift, expected_drift)
    status_code, status_cli = best_cli(root, uri, "status")
    roots = [root / "data" / environment for environment, _ in ENVIRONMENTS]
    listed, listing_time = timed(lambda: [list_location(str(folder)) for folder in roots])
    files = sum(len(listing) for listing in listed)
    folders = [folder / model_name(index) for folder in roots for index in range(models)]
    _, per_model_listing = timed(lambda: [list_location(str(folder)) for folder in folders])
    plan_code, plan_cli = best_cli(root, uri, "plan")
    restored_code, restored_cli = after_a_clone_with_the_facts_index(root, uri, work)

    calls: list[str] = []

    def counted(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(what)
        return registry._call(what, function, *args, **kwargs)

    by_pages, paged_time = timed(lambda: paged.read_paged(registry.client, names, counted).models)
    assert by_pages == bulk
    sample = names[:: max(1, len(names) // (50 if quick else PER_MODEL_SAMPLE))]
    _, sample_time = timed(lambda: [registry.model(name) for name in sample])
    per_model = sample_time / len(sample) * len(names)

    # Behind the tool's back: a prod champion moved by hand must show at once (no cache).
    registry.client.set_registered_model_alias(
        f"prod.{model_name(TWO_VERSIONS_EVERY)}", CHAMPION, "1"
    )
    after = compute(load_repository(root), Registry(uri, registry.default_artifact_root))
    seen = sum(1 for s in after if s.drift) == drift + 1
    with data_file(root, "prod", model_name(1)).open("a") as changed:
        changed.write("3,0\n")
    fresh_after = survey(load_repository(root), Registry(uri, registry.default_artifact_root))[0]
    data_seen = [(s.environment, s.model) for s in fresh_after if s.data_changed] == [
        ("prod", model_name(1))
    ]

    count = f"{models:,} x 3 = {len(names):,}"
    pages = -(-len(names) // sql.NAMES_PER_STATEMENT)
    table = Table(f"state at scale: {count} registered models, sqlite")
    table.add(f"load {len(names):,} manifests (validated before, read again)", seconds(load_time))
    table.add(
        "registry read (direct SQL)",
        seconds(bulk_time),
        f"{seconds(paged_time)} client paging",
        f"{paged_time / bulk_time:.1f}x",
    )
    table.add(
        "registry calls",
        f"{statements} SQL statements",
        f"{len(calls)} client calls ({len(names) / max(len(calls), 1):.0f} models/call)",
        target=f"grow with {sql.NAMES_PER_STATEMENT}-name pages",
        passed=statements <= pages * 6 + 2,
    )
    table.add(
        "status, library (load + compare)",
        seconds(status_time),
        f"{seconds(per_model)} one read per model (extrapolated from {len(sample)})",
        f"{per_model / status_time:.0f}x",
        f"<= {TARGET_SECONDS:.0f} s" if models >= 10_000 else "",
        status_time <= TARGET_SECONDS if models >= 10_000 else None,
    )
    table.add(
        f"of which listing the data: {len(roots)} roots, {files:,} files",
        seconds(listing_time),
        f"{seconds(per_model_listing)} one listing per model",
        f"{per_model_listing / listing_time:.1f}x",
    )
    runs = (
        ("status, first run after a clone", first_code, first_cli),
        ("status after a clone, CI's facts index restored", restored_code, restored_cli),
        ("status", status_code, status_cli),
        ("plan", plan_code, plan_cli),
    )
    for command, code, wall in runs:
        table.add(
            f"promote {command} (CLI, exit {code})",
            seconds(wall),
            target=f"<= {TARGET_SECONDS:.0f} s" if models >= 10_000 else "",
            passed=wall <= TARGET_SECONDS if models >= 10_000 else None,
        )
    table.add(
        "drift found / changed behind the back seen",
        f"{drift} / {'yes' if seen else 'NO'}",
        target="all / yes",
        passed=seen,
    )
    table.add(
        "a data file changed behind the back seen",
        "yes" if data_seen else "NO",
        target="yes",
        passed=data_seen,
    )
    table.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 models only, small sample")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    options = parser.parse_args()
    sizes = options.sizes or ([1000] if options.quick else [1000, 10_000])
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
    work = Path(tempfile.mkdtemp(prefix="promote-bench-state-"))
    # Parsed manifests are cached per repository: keep this run's cache in its own folder.
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    try:
        template = template_registry(work)
        for models in sizes:
            measure(models, template, work, options.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
