"""trinet: triplet-loss image embeddings on TensorFlow 2 / Keras 3.

A port of the workflow of "In Defense of the Triplet Loss for Person Re-Identification"
(Hermans, Beyer, Leibe, 2017; arXiv:1703.07737). Importing this package is cheap: TensorFlow is
only imported by the modules that need it (training, embedding), never by evaluation. The public
API, `from trinet import Embedder` (see `trinet.embedding.embedder`), is imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Embedder", "__version__"]


def __getattr__(name: str) -> Any:
    # The package root re-exports the public API lazily (ARCHITECTURE.md, rule 7): `import trinet` stays
    # free of TensorFlow.
    if name == "Embedder":
        from trinet.embedding.embedder import Embedder
        return Embedder
    raise AttributeError(f"module 'trinet' has no attribute {name!r}")
