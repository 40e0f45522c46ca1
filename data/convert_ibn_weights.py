"""Convert the published IBN-Net weights (PyTorch, github.com/XingangPan/IBN-Net releases) into a Keras
weights file of trinet's `resnet50_ibn_a` / `resnet50_ibn_b` backbone, for `--initial_checkpoint`.

    # once, where PyTorch is installed: the state dict as a .npz (no PyTorch needed from then on)
    python -c "import sys, torch, numpy; numpy.savez(sys.argv[2], **{k: v.numpy() for k, v in \
torch.load(sys.argv[1], map_location='cpu').items()})" resnet50_ibn_a-d9d0bb7b.pth resnet50_ibn_a.npz
    python data/convert_ibn_weights.py resnet50_ibn_a.npz resnet50_ibn_a.weights.h5 --kind a
    python train.py --model_name resnet50_ibn_a --initial_checkpoint resnet50_ibn_a.weights.h5 ...

A `.pth` file is read directly when the `torch` package is installed. The mapping: PyTorch's `conv1`/`bn1`
are `conv1_conv`/`conv1_bn` (`conv1_in` for IBN-b), `layer{L}.{i}` is `conv{L+1}_block{i+1}`, its
`conv1..3`/`bn1..3` are `_1_conv.._3_conv`/`_1_bn.._3_bn` (IBN-a's `bn1.IN`/`bn1.BN` are `_1_in`/`_1_bn`),
`downsample.0/1` are `_0_conv`/`_0_bn`, and IBN-b's `IN` is `_in`; convolution kernels go from
`(O, I, kh, kw)` to `(kh, kw, I, O)` with zero biases (Keras' ResNet has biases, IBN-Net none); the
classifier `fc` is dropped.
IBN-Net was trained on PyTorch's input, `(RGB / 255 - mean) / std`; trinet's ResNets take Caffe's (BGR minus
the ImageNet mean), so the converter folds the difference into the first convolution's kernel and bias: the
same output wherever the 7x7 window lies inside the image; on the 3 border pixels, where zero padding stands
for a slightly different colour in each (at most 0.5 of 255), it differs by at most 0.009 input units times
the kernel's weights. See trinet/models/backbones/resnet_ibn.py for the one difference of layout (the stride
of the three downsampling blocks).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

# Run as `python data/convert_ibn_weights.py` from anywhere: make the repository's trinet package importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: PyTorch's (torchvision's) input normalisation, RGB, on [0, 1].
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The arrays of a `.npz` file, or of a PyTorch `.pth` state dict (needs the `torch` package)."""
    if path.endswith(".npz"):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    try:
        import torch
    except ImportError:
        raise SystemExit(f"error: {path} is not a .npz file and PyTorch is not installed to read it; export "
                         "it to .npz with the command in this script's docstring") from None
    state = torch.load(path, map_location="cpu")
    state = state.get("state_dict", state)
    return {k.removeprefix("module."): v.numpy() for k, v in state.items()}


def keras_layer(key: str) -> tuple[str, str]:
    """`(Keras layer name, PyTorch parameter name)` of a state-dict key, e.g. `layer1.0.bn1.IN.weight` ->
    `('conv2_block1_1_in', 'weight')`."""
    module, _, param = key.rpartition(".")
    if module in ("conv1", "bn1"):
        return {"conv1": "conv1_conv", "bn1": "conv1_bn"}[module], param
    m = re.fullmatch(r"layer(\d)\.(\d+)\.(.+)", module)
    if not m:
        raise ValueError(f"unexpected key {key!r}")
    block = f"conv{int(m[1]) + 1}_block{int(m[2]) + 1}"
    part = {"conv1": "_1_conv", "conv2": "_2_conv", "conv3": "_3_conv", "bn1": "_1_bn", "bn2": "_2_bn",
            "bn3": "_3_bn", "bn1.IN": "_1_in", "bn1.BN": "_1_bn", "downsample.0": "_0_conv",
            "downsample.1": "_0_bn", "IN": "_in"}.get(m[3])
    if part is None:
        raise ValueError(f"unexpected key {key!r}")
    return block + part, param


def fold_torch_input(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first convolution for Caffe's input: `kernel` `(kh, kw, 3, O)` for PyTorch's RGB normalised
    input -> `(kernel, bias)` for BGR minus the ImageNet mean (trinet's `caffe` preprocessing)."""
    from trinet.models.layers import CAFFE_BGR_MEAN

    mean_rgb = np.asarray(CAFFE_BGR_MEAN[::-1], np.float64)
    std, mu = np.asarray(TORCH_STD, np.float64), np.asarray(TORCH_MEAN, np.float64)
    scale = 1.0 / (255.0 * std)  # torch input channel c = scale_c * (caffe channel 2 - c) + shift_c
    shift = (mean_rgb / 255.0 - mu) / std
    bias = np.einsum("hwco,c->o", kernel.astype(np.float64), shift)
    folded = (kernel.astype(np.float64) * scale[None, None, :, None])[:, :, ::-1, :]
    return folded.astype(np.float32), bias.astype(np.float32)


def convert(state: dict[str, np.ndarray], kind: str, out: str) -> int:
    """Write the Keras weights file `out` of trinet's `resnet50_ibn_<kind>` backbone from the IBN-Net state
    dict `state`; returns the number of layers written. Raises ValueError naming keys or layers that do not
    match."""
    from trinet.models.backbones.catalog import build_backbone

    net = build_backbone(f"resnet50_ibn_{kind}")
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        layer, param = keras_layer(key)
        if layer == "conv1_bn" and kind == "b":
            layer = "conv1_in"
        grouped.setdefault(layer, {})[param] = np.asarray(value)
    targets = {layer.name: layer for layer in net.layers if layer.weights}
    unknown = sorted(set(grouped) - set(targets))
    missing = sorted(set(targets) - set(grouped))
    if unknown or missing:
        raise ValueError(f"the state dict does not fit resnet50_ibn_{kind}: layers not in the network "
                         f"{unknown[:5]}, layers of the network not in the file {missing[:5]}")
    for name, params in grouped.items():
        layer = targets[name]
        if name.endswith("_conv"):
            kernel = np.transpose(params["weight"], (2, 3, 1, 0))
            bias = np.zeros(kernel.shape[-1], np.float32)
            if name == "conv1_conv":
                kernel, bias = fold_torch_input(kernel)
            values = [kernel, bias]
        elif name.endswith("_in"):
            values = [params["weight"], params["bias"]]
        else:
            values = [params["weight"], params["bias"], params["running_mean"], params["running_var"]]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(f"layer {name}: the file's shapes {[v.shape for v in values]}, the network's "
                             f"{expected}")
        layer.set_weights(values)
    net.save_weights(out)
    return len(grouped)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("state_dict",
                   help="IBN-Net's weights: a .npz of the state dict, or the .pth (needs torch).")
    p.add_argument("out", help="The Keras weights file to write (must end in .weights.h5).")
    p.add_argument("--kind", choices=["a", "b"], required=True, help="IBN-a or IBN-b.")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.out.endswith(".weights.h5"):
        raise SystemExit("error: the output file must end in .weights.h5 (Keras' weights files); "
                         f"got {args.out}")
    try:
        layers = convert(read_state_dict(args.state_dict), args.kind, args.out)
    except ValueError as e:
        raise SystemExit(f"error: {args.state_dict}: {e}") from None
    print(f"Wrote {args.out}: {layers} layers of resnet50_ibn_{args.kind}; train with --model_name "
          f"resnet50_ibn_{args.kind} --initial_checkpoint {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
