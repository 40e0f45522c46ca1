"""A trained model applied to images: loading and batched inference, the `Embedder` (the Python API) above
it, and the embedding writer of embed.py above that.
"""
