"""Freshness from listings: a champion's data changed since its training shows in `status`,
told from local sizes and modification times and S3 ETags and version ids (moto server)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from support.world import MODEL, World

from promote.build.listing import RootListing, data_change, list_location, listing_tag
from promote.registry.entities import TAG_DATA_LISTING

BUCKET = "fresh-data"


def _status(world: World) -> tuple[int, dict[tuple[str, str], dict[str, Any]]]:
    completed = world.cli("status", "--json")
    assert completed.returncode in (0, 1), completed.stderr
    rows = json.loads(completed.stdout)
    return completed.returncode, {(r["environment"], r.get("model", "")): r for r in rows}


def test_an_unchanged_environment_reports_no_data_change(promoted: World) -> None:
    code, rows = _status(promoted)
    assert code == 0
    assert {key: row["data_change"] for key, row in rows.items()} == {
        ("dev", MODEL): None,
        ("staging", MODEL): None,
        ("prod", MODEL): None,
    }
    plain = promoted.cli("status")
    assert plain.returncode == 0 and "data changed" not in plain.stdout


def test_files_added_changed_and_removed_show_as_data_changed_with_counts(
    promoted: World,
) -> None:
    folder = promoted.sandbox.data("prod")
    lineage = promoted.registry.lineage(_champion(promoted, "prod").run_id)
    assert set(lineage.data_listing) == {"train.csv", "test.csv"}
    rows = {d["path"]: d["rows"] for d in lineage.profile["datasets"]}
    test = pd.read_csv(folder / "test.csv")
    pd.concat([test, test.iloc[:10]]).to_csv(folder / "test.csv", index=False)
    (folder / "train.csv").unlink()
    (folder / "more" / "extra.csv").parent.mkdir()
    (folder / "more" / "extra.csv").write_text("a\n1\n")

    code, states = _status(promoted)
    assert code == 1
    change = states["prod", MODEL]["data_change"]
    assert states["prod", MODEL]["status"] == "data changed"
    assert (change["files_added"], change["files_removed"], change["files_changed"]) == (1, 1, 1)
    assert change["rows_changed_or_removed"] == rows["train.csv"] + rows["test.csv"]
    assert (change["files_at_training"], change["files_now"]) == (2, 2)
    # The other environments' data is elsewhere: untouched.
    assert states["staging", MODEL]["data_change"] is None
    plain = promoted.cli("status", "--env", "prod")
    assert plain.returncode == 1
    assert "data changed: 3 files (1 added, 1 removed, 1 changed)" in plain.stdout
    assert f"read {rows['train.csv'] + rows['test.csv']:,} rows" in plain.stdout


def test_a_file_touched_counts_as_changed_by_its_modification_time(promoted: World) -> None:
    train = promoted.sandbox.data("prod") / "train.csv"
    stat = train.stat()
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    code, states = _status(promoted)
    assert code == 1
    assert states["prod", MODEL]["data_change"]["files_changed"] == 1


def test_a_listing_tag_edited_in_the_registry_is_drift(promoted: World) -> None:
    champion = _champion(promoted, "prod")
    forged = json.loads(champion.tags[TAG_DATA_LISTING])
    forged["files"]["train.csv"] = "1:1"
    promoted.registry.client.set_model_version_tag(
        champion.name, str(champion.version), TAG_DATA_LISTING, json.dumps(forged)
    )
    code, states = _status(promoted)
    assert code == 1
    assert states["prod", MODEL]["status"] == "drifted"
    assert states["prod", MODEL]["drift"] == [
        f"champion v{champion.version}'s data listing tag is not the signed one"
    ]
    assert states["prod", MODEL]["data_change"] is None


def _champion(world: World, environment: str) -> Any:
    model = world.registry.model(f"{environment}.{MODEL}")
    assert model is not None and model.champion is not None
    return model.champion


def test_s3_objects_overwritten_deleted_and_added_are_told_by_etag_and_version_id(
    trained: World, s3: Any
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    data = trained.sandbox.data("prod")
    for name in ("train.csv", "test.csv"):
        body = (data / name).read_bytes()
        s3.put_object(Bucket=BUCKET, Key=f"prod/{MODEL}/{name}", Body=body)
    # Another model's data under the same root is listed with it, and not counted for churn.
    s3.put_object(Bucket=BUCKET, Key="prod/other/train.csv", Body=b"x\n1\n")
    trained.edit_yaml(
        "environments/prod/environment.yaml",
        lambda body: body.update(data_root=f"s3://{BUCKET}/prod"),
    )
    assert trained.promote("staging").ok
    assert trained.promote("prod").ok
    code, states = _status(trained)
    assert code == 0 and states["prod", MODEL]["data_change"] is None

    # The same bytes written again: a new version id with the same ETag is still a change.
    same = s3.get_object(Bucket=BUCKET, Key=f"prod/{MODEL}/test.csv")["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=f"prod/{MODEL}/test.csv", Body=same)
    code, states = _status(trained)
    change = states["prod", MODEL]["data_change"]
    assert code == 1
    assert (change["files_added"], change["files_removed"], change["files_changed"]) == (0, 0, 1)

    s3.delete_object(Bucket=BUCKET, Key=f"prod/{MODEL}/train.csv")  # a delete marker
    s3.put_object(Bucket=BUCKET, Key=f"prod/{MODEL}/new.csv", Body=b"x\n2\n")
    s3.put_object(Bucket=BUCKET, Key="prod/other/more.csv", Body=b"x\n3\n")
    code, states = _status(trained)
    change = states["prod", MODEL]["data_change"]
    assert (change["files_added"], change["files_removed"], change["files_changed"]) == (1, 1, 1)
    assert change["location"] == f"s3://{BUCKET}/prod/{MODEL}"


def test_an_unversioned_bucket_is_told_by_etag(s3: Any) -> None:
    s3.create_bucket(Bucket="plain")
    s3.put_object(Bucket="plain", Key="root/m/a.csv", Body=b"1\n")
    before = list_location("s3://plain/root")
    assert set(before) == {"m/a.csv"}
    s3.put_object(Bucket="plain", Key="root/m/a.csv", Body=b"2\n")
    after = RootListing(list_location("s3://plain/root/"))
    change = data_change(
        "s3://plain/root/m", listing_tag(RootListing(before).under("m"), {}), after.under("m")
    )
    assert change is not None and change.changed == 1


def test_a_listing_too_long_for_a_tag_is_kept_as_its_count_and_digest(tmp_path: Path) -> None:
    files = {f"part-{index:06d}.csv": f"{index}:{index}" for index in range(6000)}
    tag = listing_tag(files, {})
    assert len(tag) < 1000
    assert data_change("here", tag, dict(files)) is None
    changed = dict(files, **{"part-000001.csv": "2:2"})
    change = data_change("here", tag, changed)
    assert change is not None and change.added is None
    assert change.summary == "data changed: 6000 -> 6000 files, listing differs"
    assert list_location(str(tmp_path / "missing")) == {}


def test_a_symlink_back_up_the_tree_is_listed_once(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.csv").write_text("1\n")
    (tmp_path / "m" / "loop").symlink_to(tmp_path)
    assert set(list_location(str(tmp_path))) == {"m/a.csv"}


def test_a_folder_linked_from_elsewhere_is_listed_through_its_link(tmp_path: Path) -> None:
    outside = tmp_path / "shared"
    (outside / "2026").mkdir(parents=True)
    (outside / "2026" / "b.csv").write_text("2\n")
    root = tmp_path / "root"
    (root / "m").mkdir(parents=True)
    (root / "m" / "a.csv").write_text("1\n")
    (root / "m" / "shared").symlink_to(outside)
    # Reached twice (the link, and a second link to it): listed once, under the first name.
    (root / "again").symlink_to(outside)
    listed = set(list_location(str(root)))
    assert "m/a.csv" in listed
    assert len(listed & {"m/shared/2026/b.csv", "again/2026/b.csv"}) == 1
    assert len(listed) == 2
