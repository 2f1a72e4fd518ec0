"""promote: GitOps promotion of ML models with rebuilds and lineage proofs."""

__version__ = "0.1.0"
