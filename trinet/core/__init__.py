"""Base: the error type, crash-safe file writing, progress lines and the distances shared by training and
evaluation (numpy only).
"""
