"""Tools beside the workflow: the no-learning baselines (raw pixels) that a learned embedding must beat."""
