"""The demo: a deterministic synthetic dataset and a walk through every stage that exists."""
