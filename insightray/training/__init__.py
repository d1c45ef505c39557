"""Training: losses, anchor fitting and the training loop."""
