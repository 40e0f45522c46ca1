"""trinet: triplet-loss image embeddings on TensorFlow 2 / Keras 3.

A port of the workflow of "In Defense of the Triplet Loss for Person Re-Identification"
(Hermans, Beyer, Leibe, 2017; arXiv:1703.07737). Importing this package is cheap: TensorFlow is
only imported by the modules that need it (training, embedding), never by evaluation.
"""

__version__ = "0.1.0"
