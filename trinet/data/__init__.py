"""Datasets: the CSV files, the releases' naming, the converters, combining training sets, the embedding
files and their shards (numpy and h5py only).
"""
