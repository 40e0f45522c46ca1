"""Nearest-neighbour search of a gallery with faiss (the `search` extra): the index kinds and folder, top-k
search under the excluders, and the results files. No TensorFlow.
"""
