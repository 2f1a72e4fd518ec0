"""What the signatures prove of registered versions, tried as someone with registry write access
would try to fool them: copied tags, other keys, edited claims, copied runs and summaries."""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from support import proofs

from promote.build.listing import tag_digest
from promote.errors import InputError, ProofInvalid
from promote.manifests.schema import EnvironmentConfig, KeylessIdentity, Signing
from promote.proof import dsse, keys
from promote.proof.cache import VerifiedCache
from promote.proof.statement import Claims
from promote.proof.trust import Signer, Trust, keyless_identity
from promote.proof.versions import prove, prove_model
from promote.registry.entities import (
    TAG_ARTIFACT_DIGEST,
    TAG_COMMIT,
    TAG_DATA_LISTING,
    TAG_DIRTY,
    TAG_PROVENANCE,
    TAG_VERDICT,
    TAG_VERIFICATION,
    VERDICT_PASSED,
    VERDICT_PENDING,
    VERDICT_REJECTED,
    RegisteredModel,
    Version,
)

NAME = "prod.churn"


def _trust() -> Trust:
    config = EnvironmentConfig(name="prod", data_root="data/prod", signing=proofs.signing())
    return Trust.of(config, "environments/prod/environment.yaml")


def _passed(number: int = 1, **fields: object) -> Version:
    return proofs.signed_version(proofs.claims(NAME, number, **fields), number, VERDICT_PASSED)


def _retagged(version: Version, **tags: str) -> Version:
    return replace(version, tags={**version.tags, **tags})


def test_a_version_the_pipeline_signed_is_genuine_and_passed() -> None:
    proof = prove(_passed(), _trust())
    assert proof.genuine and proof.passed and proof.problem is None
    assert proof.claims is not None and proof.claims.commit == "a" * 40


def test_a_version_without_provenance_is_forged() -> None:
    version = _passed()
    bare = replace(version, tags={k: v for k, v in version.tags.items() if k != TAG_PROVENANCE})
    proof = prove(bare, _trust())
    assert not proof.genuine and proof.problem == "no signed provenance"


def test_a_statement_signed_with_another_key_is_forged() -> None:
    claims = proofs.claims(NAME, 1)
    forged = proofs.signed_version(claims, 1, VERDICT_PASSED, key=proofs.new_key())
    proof = prove(forged, _trust())
    assert not proof.genuine
    assert proof.problem == "provenance: no signature verifies with the environment's keys"


def test_a_signature_naming_the_trusted_key_id_is_still_checked() -> None:
    """The key id in an envelope selects a key; it proves nothing by itself."""
    attacker = proofs.new_key()
    statement = proofs.claims(NAME, 1).statement()
    payload = json.dumps(statement).encode()
    trusted_id = next(iter(_trust().keys))
    envelope = dsse.sign(payload, attacker.key, trusted_id)
    with pytest.raises(ProofInvalid, match="no signature verifies"):
        _trust().open(envelope)


def test_an_edited_tag_or_artifact_digest_is_forged() -> None:
    for tag, value in ((TAG_ARTIFACT_DIGEST, "0" * 64), (TAG_DIRTY, "false")):
        signed_dirty = _passed(dirty=True) if tag == TAG_DIRTY else _passed()
        proof = prove(_retagged(signed_dirty, **{tag: value}), _trust())
        assert not proof.genuine
        assert proof.problem == f"tag {tag} differs from the signed provenance"


def test_provenance_copied_onto_another_run_or_location_is_forged() -> None:
    version = _passed()
    assert "is for run" in str(prove(replace(version, run_id="r9"), _trust()).problem)
    moved = replace(version, source="s3://attacker/model")
    assert "is not the signed one" in str(prove(moved, _trust()).problem)
    renamed = prove(replace(version, name="staging.churn"), _trust())
    assert renamed.problem == "provenance is for prod.churn"


def test_artifact_locations_compare_as_places_not_strings() -> None:
    version = _passed(artifact_uri="/artifacts/prod/run/model")
    assert prove(replace(version, source="file:///artifacts/prod/run//model/"), _trust()).genuine


def test_tampered_envelopes_are_refused() -> None:
    version = _passed()
    envelope = json.loads(version.tags[TAG_PROVENANCE])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["manifestDigest"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    changed = json.dumps(envelope)
    retyped = json.dumps({**json.loads(version.tags[TAG_PROVENANCE]), "payloadType": "text/x"})
    for text in (changed, retyped, "not json", "{}", '{"payload": 3}'):
        assert not prove(_retagged(version, **{TAG_PROVENANCE: text}), _trust()).genuine


def test_a_statement_with_fields_promote_does_not_sign_is_refused() -> None:
    statement = proofs.claims(NAME, 1).statement()
    statement["predicate"]["runDetails"]["metadata"]["note"] = "trust me"
    with pytest.raises(ProofInvalid, match="fields promote does not sign"):
        Claims.from_statement(statement)
    with pytest.raises(ProofInvalid, match="malformed"):
        Claims.from_statement({**statement, "predicate": {}})


def test_a_passed_verdict_needs_its_own_signed_summary() -> None:
    rejected = proofs.signed_version(proofs.claims(NAME, 1), 1, VERDICT_REJECTED)
    flipped = prove(_retagged(rejected, **{TAG_VERDICT: VERDICT_PASSED}), _trust())
    assert flipped.genuine and not flipped.passed
    assert flipped.passed_problem == "no signed verification"

    v1, v2 = _passed(1), proofs.signed_version(proofs.claims(NAME, 2), 2, VERDICT_PENDING)
    borrowed = _retagged(v2, **{TAG_VERIFICATION: v1.tags[TAG_VERIFICATION]})
    proof = prove(borrowed, _trust())
    assert not proof.passed
    assert proof.passed_problem == "verification summary's version, provenance does not match"


def test_a_second_version_on_an_earlier_versions_run_is_a_copy() -> None:
    original = _passed(1)
    clone = replace(original, version=2)
    model = RegisteredModel(NAME, {"champion": 2}, {}, [original, clone])
    found = prove_model(model, _trust())
    assert found[1].genuine and found[1].passed
    assert not found[2].genuine and found[2].problem == "a copy of v1 (same run r1)"


def test_an_environment_without_keys_or_with_a_bad_key_is_bad_input() -> None:
    where = "environments/prod/environment.yaml"
    with pytest.raises(InputError, match=r"^environments/prod/environment.yaml: signing: names no"):
        Trust.of(EnvironmentConfig(name="prod", data_root="d"), where)
    rsa_like = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    bad = EnvironmentConfig(name="prod", data_root="d", signing=Signing(public_keys=[rsa_like]))
    with pytest.raises(InputError, match=r"signing.public_keys.0: "):
        Trust.of(bad, where)


def test_generated_keys_stay_private_and_are_found_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keys.KEY_FOLDER_VARIABLE, str(tmp_path / "keys"))
    monkeypatch.delenv(keys.KEY_VARIABLE, raising=False)
    public, path = keys.generate()
    assert path.parent == tmp_path / "keys"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    wanted = keys.key_id(keys.public_key(public))
    found = keys.find_private([wanted])
    assert found is not None and found.key_id == wanted
    assert keys.find_private(["0" * 64]) is None
    # In CI the key comes as a secret's text; a key the environment does not list is not used.
    path.unlink()
    monkeypatch.setenv(keys.KEY_VARIABLE, proofs.new_key().pem.decode())
    assert keys.find_private([wanted]) is None


def test_verifications_are_remembered_by_their_exact_bytes(tmp_path: Path) -> None:
    path = tmp_path / "verified"
    cache = VerifiedCache(path)
    version = _passed()
    first = prove(version, _trust(), cache)
    assert first.passed
    cache.save()
    again = VerifiedCache(path)
    remembered = prove(version, _trust(), again)
    assert remembered.passed and remembered.claims == first.claims
    # One changed byte anywhere the proof rests on is a miss, and a full verification.
    edited = _retagged(version, **{TAG_ARTIFACT_DIGEST: "0" * 64})
    assert not prove(edited, _trust(), again).genuine
    other_keys = Trust("prod", {"0" * 64: proofs.new_key().key.public_key()})
    assert not prove(version, other_keys, again).genuine
    # Failures are never kept.
    again.save()
    assert len(path.read_text().split()) == 1


def test_what_status_needs_beyond_genuine_is_remembered_too(tmp_path: Path) -> None:
    path = tmp_path / "verified"
    listing = '{"files":{"train.csv":"10:1"},"format":1,"rows":{}}'
    copy = _passed(copied_from="staging.churn/3", data_listing_digest=tag_digest(listing))
    copy = _retagged(copy, **{TAG_DATA_LISTING: listing})
    cache = VerifiedCache(path)
    first = prove(copy, _trust(), cache)
    assert first.passed and first.copied and first.listing_problem is None
    cache.save()
    remembered = prove(copy, _trust(), VerifiedCache(path))
    assert remembered.passed and remembered.copied
    # An edited listing tag is a miss: verified again, the version stays genuine, the listing is
    # named as not the signed one, and that is never remembered.
    edited = _retagged(copy, **{TAG_DATA_LISTING: listing.replace("10:1", "10:2")})
    again = VerifiedCache(path)
    proof = prove(edited, _trust(), again)
    assert proof.genuine and proof.listing_problem == "v1's data listing tag is not the signed one"
    again.save()
    assert len(path.read_text().split()) == 1


def test_bytes_moved_from_one_tag_to_the_next_are_another_cache_entry(tmp_path: Path) -> None:
    version = _passed()
    cache = VerifiedCache(tmp_path / "verified")
    assert prove(version, _trust(), cache).passed
    # The same bytes end to end, split elsewhere between two proven tags: never the same entry.
    commit, digest = version.tags[TAG_COMMIT], version.tags[TAG_ARTIFACT_DIGEST]
    shifted = _retagged(
        version, **{TAG_COMMIT: commit + digest[0], TAG_ARTIFACT_DIGEST: digest[1:]}
    )
    assert not prove(shifted, _trust(), cache).genuine


def _keyless_trust() -> Trust:
    identity = KeylessIdentity(
        repository="acme/ml-gitops", workflow=".github/workflows/promote-apply.yml"
    )
    config = EnvironmentConfig(name="prod", data_root="d", signing=Signing(keyless=identity))
    return Trust.of(config, "environments/prod/environment.yaml")


def test_keyless_verification_pins_the_apply_workflow_at_the_protected_branch() -> None:
    """What of keyless is testable offline: the identity pinned, and refusals before any
    network (signing needs Fulcio and Rekor, verifying Sigstore's trust root: online only)."""
    trust = _keyless_trust()
    assert trust.keyless is not None
    assert keyless_identity(trust.keyless) == (
        "https://github.com/acme/ml-gitops/.github/workflows/promote-apply.yml@refs/heads/main"
    )
    bundle = json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": "AAAA"}},
            "dsseEnvelope": {},
        }
    )
    with pytest.raises(ProofInvalid, match="names no keyless identity"):
        _trust().open(bundle)  # an environment with keys only never takes a keyless bundle
    with pytest.raises(ProofInvalid, match=r"^Sigstore bundle does not verify"):
        trust.open(bundle)


def test_without_a_key_or_an_actions_identity_nothing_is_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keys.KEY_FOLDER_VARIABLE, str(tmp_path))
    monkeypatch.delenv(keys.KEY_VARIABLE, raising=False)
    for variable in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    for trust in (_trust(), _keyless_trust()):
        with pytest.raises(InputError, match=r"^environments/prod/environment.yaml: signing: "):
            Signer(trust, "environments/prod/environment.yaml").check()
