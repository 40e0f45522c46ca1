"""The embedding files, as written by `embed.py` and read by `evaluate.py` (numpy and h5py only).

Two formats (`formats.EMBEDDING_FORMATS`: `hdf5`, `csvfile`), one writer type (`writer.EmbeddingFileWriter`,
made by `formats.open_writer`); both publish the file only when it is complete. The HDF5 file (`hdf5`) is
what `evaluate.py` reads; its layout (compatible with the original triplet-reid, plus self-description):
    emb                 (N, D) float32   final embedding of each row, in dataset order
    emb_aug             (M, N, D) float32  every test-time view; only when M > 1
    augmentation_types  (M,) bytes       view names, e.g. b'original_center', b'original_flip_top_left'
    emb_local           (N, S, D_l) float32  AlignedReID's local features (the S stripes of each row, after
                        the aggregator); only for a model trained with --local_branch
    pids, fids          (N,) utf-8 str   identity and path of each row (pids empty for plain lists)
    attrs               free-form settings (experiment, checkpoint, aggregator, trinet version), and
                        `rows_written` = N, set last by `EmbeddingWriter`: the file is complete

The CSV file (`csvfile.CsvWriter`) holds `path,v1,...,vD` lines, the format of the paper's trinet_embed.py.
"""
