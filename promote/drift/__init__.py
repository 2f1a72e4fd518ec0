"""Training profiles and drift: what a champion was trained on, against the data it sees now."""
