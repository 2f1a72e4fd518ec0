"""New repositories and sandboxes: `promote init`, `promote quickstart`, templates, the example."""
