"""The loop stage: choose what to label next (selection strategies and `select_images`)."""
