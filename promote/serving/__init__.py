"""Serving the champion: `predict` scores files where they live, `serve` answers in real time and
follows the champion. Both load only a version `verified` proves from what storage holds."""
