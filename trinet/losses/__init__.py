"""Loss functions of `(embeddings or distances, labels)`, and the in-batch monitoring beside them."""
