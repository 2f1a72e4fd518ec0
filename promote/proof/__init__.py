"""Signed proof of what the pipeline built and verified: keys, DSSE envelopes, statements."""
