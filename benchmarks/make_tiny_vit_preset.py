"""Write a small keras-hub ViT with random weights as a local preset folder: the from-scratch ViT of a
benchmark row (`--model_name keras_hub --backbone_preset DIR`; no network needed).

    python benchmarks/make_tiny_vit_preset.py DIR [--image_size 256 128] [--patch_size 16] [--layers 4]
        [--heads 4] [--hidden_dim 192] [--mlp_dim 768] [--seed 0]

The preset's image size only sets the grid of its position embeddings: trinet resizes them to the net input's
grid (and its --patch_stride). Train from scratch (random initialisation of the run's --seed) by leaving
--initial_checkpoint out; --initial_checkpoint preset takes the folder's random weights instead.
"""

from __future__ import annotations

import argparse
import sys

from trinet.console.commands import import_tensorflow_quietly


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("target", help="The preset folder to write (must not exist).")
    p.add_argument("--image_size", type=int, nargs=2, default=(256, 128), metavar=("H", "W"))
    p.add_argument("--patch_size", type=int, default=16)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--hidden_dim", type=int, default=192)
    p.add_argument("--mlp_dim", type=int, default=768)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import_tensorflow_quietly()
    from trinet.models.backbones.hub import make_tiny_vit_preset
    make_tiny_vit_preset(args.target, tuple(args.image_size), args.patch_size, args.layers, args.heads,
                         args.hidden_dim, args.mlp_dim, args.seed)
    print(f"Wrote {args.target}: --model_name keras_hub --backbone_preset {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
