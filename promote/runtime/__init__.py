"""How the process runs: lazy MLflow import and the collector, failpoints, redaction of output."""
