"""promote: GitOps promotion of ML models with rebuilds and lineage proofs."""

__version__ = "0.1.0"

# What pip installs: "promote" on PyPI is another project. The package and command are promote.
DISTRIBUTION = "promote-gitops"
