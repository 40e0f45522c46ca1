"""Models: layers, backbones behind a registry, global poolings, embedding heads, the model builder and the
devices models run on.
"""
