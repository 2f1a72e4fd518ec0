"""A champion whose stored model was altered after it was signed: neither `predict` nor `serve`
loads it; both exit 1 and write (or listen on) nothing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from support.serving import ScoringServer
from support.world import MODEL, World

PROD = f"prod.{MODEL}"


def test_a_tampered_champion_is_refused_by_predict_and_serve(
    promoted: World, tmp_path: Path
) -> None:
    model = promoted.registry.model(PROD)
    assert model is not None and model.champion is not None
    stored = Path(unquote(urlsplit(model.champion.source).path))
    victim = next(p for p in sorted(stored.rglob("*")) if p.suffix in (".pkl", ".skops"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    output = tmp_path / "out" / "s.parquet"

    scored = promoted.cli(
        "predict",
        MODEL,
        "--env",
        "prod",
        "--input",
        str(promoted.sandbox.data("prod") / "test.csv"),
        "--output",
        str(output),
    )
    assert scored.returncode == 1, scored.stderr
    [line] = scored.stderr.splitlines()
    assert line.startswith(f"error: {PROD}/1: ")
    assert "signature does not verify" in line or "does not match its signed digest" in line
    assert not output.parent.exists()

    server = ScoringServer(promoted.repo, "prod")
    assert server.process.wait(timeout=120) == 1
    assert server.log().splitlines() == [line]  # the same refusal; never "serving ..."
