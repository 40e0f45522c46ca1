"""The run folder: `args.json`, checkpoints (strict by variable path, with checksums) and the lock of an
experiment root (no TensorFlow).
"""
