"""The input pipeline: decoding, crops and stateless augmentation, P x K and random sampling, and the
`tf.data` datasets.
"""
