"""The `visionloop` command: one module per command group, each command one stage call."""
