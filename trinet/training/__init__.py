"""Training: the run (checks, building, the loop) and its bookkeeping, the update steps, the weighted
objectives, optimizers and schedules, validation, mutual learning, distillation and Ctrl+C handling.
"""
