"""Provenance statements: the data listing's digest is signed where a record has a listing, and
a statement signed before listings existed reads back unchanged."""

from __future__ import annotations

import pytest
from support.proofs import claims

from promote.errors import ProofInvalid
from promote.proof.statement import Claims


def test_a_listing_digest_is_part_of_the_signed_statement() -> None:
    listed = claims("prod.churn", 1, data_listing_digest="9" * 64)
    statement = listed.statement()
    (_code, _libraries, data) = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert data["annotations"] == {"listingDigest": "9" * 64}
    assert Claims.from_statement(statement) == listed


def test_a_statement_without_a_listing_is_the_one_signed_before_listings_existed() -> None:
    unlisted = claims("prod.churn", 1)
    statement = unlisted.statement()
    (_code, _libraries, data) = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert set(data) == {"name", "uri", "digest"}
    assert Claims.from_statement(statement).data_listing_digest is None
    data["annotations"] = {"listingDigest": "9" * 64, "extra": 1}
    with pytest.raises(ProofInvalid, match="fields promote does not sign"):
        Claims.from_statement(statement)
