"""Learning without labels: pseudo labels for unlabeled images (the k-reciprocal Jaccard distance and
DBSCAN, `jaccard`, `clustering`), as in Cluster Contrast (Dai et al. 2021) and SpCL (Ge et al. 2020).

numpy / scipy / scikit-learn only; the cluster-memory loss is in `trinet.losses.memory`.
"""
