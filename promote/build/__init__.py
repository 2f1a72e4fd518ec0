"""Where models are built: git, the training runner, data, lineage records and artifact digests."""
