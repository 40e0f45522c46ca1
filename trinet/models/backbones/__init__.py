"""Backbones: networks that map raw RGB images `(B, H, W, 3)` in [0, 255] to feature maps `(B, h, w, F)`.

Each backbone carries its own input preprocessing, so a saved model takes raw pixels. The ImageNet
networks come from `keras.applications`; `lunet` is a small residual network trained from scratch,
in the spirit of the paper's LuNet, for small inputs (128x64) and for the CPU. The global pooling
that follows is chosen separately (`--pooling`, `trinet.config.registries.POOLINGS`); it has no weights, so
checkpoints of backbones that pooled inside load unchanged.

One module per family (`applications`: keras.applications, ConvNeXt among them; `lunet`; `osnet`: OSNet
x1.0 to x0.25; `resnet_ibn`: ResNet-50-IBN-a/b in keras.applications' layout), each with the entries it adds
to the catalog (`catalog.BACKBONES`, with `build_backbone`). Keras is imported inside the builders: the
catalog is cheap to import (`train.py --help`).
"""
