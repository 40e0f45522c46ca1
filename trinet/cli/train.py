"""train.py: learn an embedding with the batch-hard triplet loss on P x K batches, and optionally the
identification, centre and other losses of the Bag of Tricks recipe.

Every flag of the original triplet-reid train.py keeps its name and meaning. The command line is
converted once into a `TrainSettings` (what args.json holds); choices and their help come from the
registries.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Sequence

from trinet.config import registries

from trinet.console import argtypes

from trinet.models import heads

from trinet.models.backbones import catalog, hub

from trinet.config.settings import (CLIP_POOLINGS, DISTRIBUTE, MIXED_PRECISION, NOT_SAVED, RUNTIME,
                                    TrainSettings)
from trinet.console.commands import import_tensorflow_quietly, run_main, setup_console_logging
from trinet.core.distances import METRICS
from trinet.core.errors import TrinetError
from trinet.evaluation.excluders import EXCLUDERS
from trinet.pipeline import sampling

log = logging.getLogger("trinet.train")

#: The defaults live in one place: the settings dataclass.
D = TrainSettings()
#: Settings holding paths: made absolute, so that the run resumes from any working folder.
PATH_SETTINGS = ("train_set", "image_root", "val_query", "val_gallery", "val_image_root", "teacher",
                 "unlabeled_set", "unlabeled_image_root")


def _milestones(text: str) -> tuple[int, ...]:
    """Comma- or space-separated iterations, e.g. `4000,7000`."""
    parts = [p for p in text.replace(",", " ").split() if p]
    return tuple(argtypes.positive_int(p) for p in parts)


class _StoreTuple(argparse.Action):
    """Store the values of an `nargs` option as a tuple (as `TrainSettings` holds them)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(values))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train an embedding with the triplet loss on P x K batches (P identities, K images "
                    "each), optionally with the identification and centre losses of the Bag of Tricks. "
                    "Everything about the run goes to --experiment_root: args.json, checkpoints, "
                    "train.log, TensorBoard events and, at the end, model.keras. Ctrl+C or SIGTERM "
                    "finishes the current step, saves and exits; --resume continues exactly there.")
    g = p.add_argument_group("experiment")
    g.add_argument("--experiment_root", required=True, type=argtypes.writeable_directory,
                   help="Folder for everything this run writes. Must be new or empty unless --resume.")
    g.add_argument("--resume", action="store_true",
                   help="Continue the run in --experiment_root from its latest checkpoint, with the "
                        "arguments saved in its args.json (other flags given are ignored, with a warning "
                        "if they differ).")
    g.add_argument("--seed", type=argtypes.nonnegative_int, default=D.seed,
                   help="Seed of the sampling, augmentation and initialisation; with a fixed seed a run "
                        "is reproducible on the CPU. Default: a random seed, saved in args.json.")
    g = p.add_argument_group("data")
    g.add_argument("--train_set", type=argtypes.readable_file,
                   help="CSV file of `pid,relative/path` rows to train on. Required unless --resume.")
    g.add_argument("--image_root", type=argtypes.readable_directory,
                   help="Folder that the paths of --train_set are relative to.")
    g.add_argument("--skip_missing", action="store_true",
                   help="Drop images listed in --train_set that do not exist (with a warning) instead "
                        "of stopping with an error.")
    g.add_argument("--validate_images", action="store_true",
                   help="Decode every training image before training starts. Without it only the first "
                        "bytes of each file are checked; a batch holding an image that fails to decode is "
                        "skipped during training (the file is named, counted and left out from then on).")
    g.add_argument("--on_bad_image", choices=["skip", "error"], default=D.on_bad_image,
                   help="What to do before training with images that are empty, not images, or (with "
                        "--validate_images) undecodable: skip them with a warning, or stop with an error.")
    g.add_argument("--loading_threads", type=argtypes.positive_int, default=D.loading_threads,
                   help="Number of threads that decode and augment images in parallel.")
    g = p.add_argument_group("model")
    g.add_argument("--model_name", choices=catalog.CHOICES, default=D.model_name, metavar="MODEL_NAME",
                   help=f"Backbone network, one of {', '.join(catalog.CHOICES)} (resnet_v1_50, "
                        "resnet_v1_101 and mobilenet_v1_1_224 are the original's names).")
    g.add_argument("--backbone_preset", default=D.backbone_preset, metavar="NAME_OR_DIR",
                   help="--model_name keras_hub: the keras-hub preset whose backbone (ViT, DINOv2, CLIP "
                        "vision, "
                        "Swin, ResNet, EfficientNet, ...) trinet uses: a local preset folder (keras-hub's "
                        "save_to_preset; works offline), or a preset name (kaggle://..., hf://...), "
                        "downloaded "
                        "once into $KERAS_HOME/hub_presets/ and refused at once when offline. Its weights "
                        "are "
                        "loaded with --initial_checkpoint preset only. Needs " + hub.INSTALL + ".")
    g.add_argument("--patch_stride", type=argtypes.positive_int, default=D.patch_stride,
                   help="keras-hub ViTs: the stride of the patch convolution; below the patch size the "
                        "patches "
                        "overlap (TransReID: 12 for 16). Default: the patch size.")
    g.add_argument("--camera_embedding", action="store_true",
                   help="keras-hub ViTs: SIE (TransReID), a learnt vector per camera, times "
                        "--camera_embedding_scale, added to every token. The cameras come from the `camera` "
                        "column of --train_set (data/convert.py writes it), else from its file names in a "
                        "release's naming; refused when neither gives them.")
    g.add_argument("--camera_embedding_scale", type=argtypes.positive_float, default=D.camera_embedding_scale,
                   help="--camera_embedding: SIE's lambda, the factor of the camera vectors.")
    g.add_argument("--head_name", choices=sorted(heads.HEADS), default=D.head_name,
                   help="Embedding head. " + heads.help_text() + ".")
    g.add_argument("--embedding_dim", type=argtypes.positive_int, default=D.embedding_dim,
                   help="Dimensionality of the embedding space (not used by bnneck, whose embedding is the "
                        "backbone's pooled feature).")
    g.add_argument("--pooling", choices=sorted(registries.POOLINGS), default=D.pooling,
                   help="Global pooling of the backbone's feature map. " + registries.POOLINGS.help() + ".")
    g.add_argument("--last_stride", type=int, choices=[1, 2], default=D.last_stride,
                   help="Stride of the backbone's last stage; 1 doubles the final feature map's height "
                        "and width (the Bag of Tricks). Available for "
                        f"{', '.join(catalog.LAST_STRIDE_CHOICES)}.")
    g.add_argument("--num_stripes", type=argtypes.positive_int, default=D.num_stripes,
                   help="--head_name pcb: the horizontal stripes of the feature map, each with its own "
                        "reduction to --embedding_dim, batch norm and classifier (at most the feature map's "
                        "height: the input height / 32, / 16 with --last_stride 1, for the ResNets).")
    g.add_argument("--pcb_global_branch", action="store_true",
                   help="--head_name pcb: also a branch on the globally pooled feature (pytorch-reid-lite "
                        "found it helps).")
    g.add_argument("--local_branch", action="store_true",
                   help="AlignedReID's local branch beside the head: the feature map's --local_stripes "
                        "horizontal stripes, each averaged, reduced to --local_dim by one linear layer "
                        "shared by the stripes, batch norm and ReLU; trained by a local triplet loss "
                        "(--local_loss_weight) on the hardest pairs of the global distances. embed.py writes "
                        "the local features as emb_local; evaluate.py --local_distance_weight uses them.")
    g.add_argument("--local_stripes", type=argtypes.positive_int, default=D.local_stripes,
                   help="--local_branch: the number of stripes (AlignedReID: one per row of ResNet-50's 8x4 "
                        "feature map at 256x128; at most the feature map's height).")
    g.add_argument("--local_dim", type=argtypes.positive_int, default=D.local_dim,
                   help="--local_branch: the dimension of each stripe's local feature.")
    g.add_argument("--batch_norm", choices=sorted(registries.BATCH_NORMS), default=D.batch_norm,
                   help="The batch-norm layers' implementation (same variables, so checkpoints of either "
                        "load into the other). " + registries.BATCH_NORMS.help() + ".")
    g.add_argument("--test_feature", choices=["before", "after"], default=D.test_feature,
                   help="With --head_name bnneck: the embedding is the feature before or after its batch "
                        "norm (default: %(default)s, which means after).")
    g.add_argument("--test_metric", choices=sorted(METRICS), default=D.test_metric,
                   help="The distance to compare the embeddings with at test time, stored with them by "
                        "embed.py and used by evaluate.py by default (cosine is usual for bnneck's feature "
                        "after the batch norm). Default: %(default)s, which means --metric.")
    g.add_argument("--initial_checkpoint", default=D.initial_checkpoint,
                   help="Initial backbone weights: 'imagenet' (downloaded by Keras; offline, put the "
                        "file where the error message says; resnet50_ibn_a/b take ResNet-50's in every layer "
                        "they share; lunet and OSNet have none), the path of a Keras weights file for the "
                        "backbone, or another trinet experiment root or checkpoint file (its backbone, "
                        "and its head if it has the same head); with --model_name keras_hub, 'preset': the "
                        "weights of --backbone_preset. Default: random initialisation.")
    g = p.add_argument_group("batches and augmentation")
    g.add_argument("--sampler", choices=sorted(sampling.SAMPLERS), default=D.sampler,
                   help="pk: P identities x K images per batch; pk_camera: the same, the K images of an "
                        "identity drawn from its cameras in turn (the `camera` column of --train_set, which "
                        "data/convert.py writes); pk_clips: video re-id's P identities x K tracklets (the "
                        "`tracklet` column) x --clip_length frames, each clip pooled into one sample before "
                        "the losses; random: batch_p x batch_k images drawn at random "
                        "(identification-only training, --triplet_loss_weight 0); class_balanced: batch_p x "
                        "batch_k distinct classes, one image each, every class once per pass (the proxy "
                        "losses on many classes with few images).")
    g.add_argument("--batch_p", type=argtypes.positive_int, default=D.batch_p,
                   help="P: identities per batch (at least 2).")
    g.add_argument("--batch_k", type=argtypes.positive_int, default=D.batch_k,
                   help="K: images per identity in a batch (at least 2 with the triplet loss; identities "
                        "with fewer images repeat them).")
    g.add_argument("--clip_length", type=argtypes.positive_int, default=D.clip_length,
                   help="T of --sampler pk_clips: the frames drawn from each tracklet (in frame order; a "
                        "shorter tracklet repeats frames), so a batch holds batch_p x batch_k x T images.")
    g.add_argument("--temporal_pooling", choices=CLIP_POOLINGS, default=D.temporal_pooling,
                   help="How --sampler pk_clips pools a clip's frame outputs into one sample before the "
                        "losses (embed.py --pool_by tracklet --temporal_pooling pools tracklets at test "
                        "time).")
    g.add_argument("--net_input_height", type=argtypes.positive_int, default=D.net_input_height,
                   help="Height of the images fed to the network.")
    g.add_argument("--net_input_width", type=argtypes.positive_int, default=D.net_input_width,
                   help="Width of the images fed to the network.")
    g.add_argument("--pre_crop_height", type=argtypes.positive_int, default=D.pre_crop_height,
                   help="Height images are resized to before a random crop; used only with "
                        "--crop_augment.")
    g.add_argument("--pre_crop_width", type=argtypes.positive_int, default=D.pre_crop_width,
                   help="Width images are resized to before a random crop; used only with --crop_augment.")
    g.add_argument("--flip_augment", action="store_true",
                   help="Randomly mirror training images left-right.")
    g.add_argument("--crop_augment", action="store_true",
                   help="Resize to the pre-crop size and take a random crop of the net input size.")
    g.add_argument("--pad_crop", type=argtypes.nonnegative_int, default=D.pad_crop,
                   help="Pad by this many pixels, then take a random crop of the input size (the Bag of "
                        "Tricks uses 10); 0: off.")
    g.add_argument("--random_erasing_prob", type=argtypes.unit_float, default=D.random_erasing_prob,
                   help="Probability of erasing a random rectangle (2-40%% of the area, aspect 0.3-3.33, "
                        "filled with the ImageNet mean; Zhong et al. 2017); the Bag of Tricks uses 0.5.")
    # colour augmentation (issue 12)
    g.add_argument("--color_jitter", type=argtypes.nonnegative_float, nargs=4, default=D.color_jitter,
                   metavar=("B", "C", "S", "H"), action=_StoreTuple,
                   help="Colour jitter as torchvision's ColorJitter: brightness, contrast and saturation "
                        "factors uniform in [max(0, 1 - x), 1 + x], a hue shift uniform in [-H, H] (H <= "
                        "0.5, in turns of the colour wheel), applied in this fixed order; e.g. 0.2 0.15 0 0 "
                        "(fast-reid's). Default: off.")
    g.add_argument("--auto_augment_prob", type=argtypes.unit_float, default=D.auto_augment_prob,
                   help="Probability of applying trinet's AutoAugment-style policy to an image: one of "
                        "its sub-policies, each two colour or geometric operations with their own "
                        "probability and magnitude (trinet.pipeline.augment.AUTO_AUGMENT_POLICY); "
                        "fast-reid's SBS uses AutoAugment with 0.1. 0: off.")
    g = p.add_argument_group("objectives")
    g.add_argument("--loss", choices=sorted(registries.LOSSES), default=D.loss,
                   help="The triplet loss. " + registries.LOSSES.help() + ".")
    g.add_argument("--margin", type=argtypes.margin, default=D.margin,
                   help="A number >= 0 for a hinge max(0, m + d_ap - d_an); 'soft' for the soft margin "
                        "ln(1 + exp(d_ap - d_an)); 'none' for the raw difference.")
    g.add_argument("--metric", choices=sorted(METRICS), default=D.metric,
                   help="Distance between embeddings in the triplet loss.")
    g.add_argument("--triplet_loss_weight", type=argtypes.nonnegative_float, default=D.triplet_loss_weight,
                   help="Weight of the triplet loss; 0 trains with the identification loss only.")
    g.add_argument("--id_loss_weight", type=argtypes.nonnegative_float, default=D.id_loss_weight,
                   help="Weight of the identification loss: softmax cross-entropy of a bias-free classifier "
                        "over the training identities (initialised with std 0.001); 0: off.")
    g.add_argument("--label_smoothing", type=argtypes.nonnegative_float, default=D.label_smoothing,
                   help="Label smoothing of the identification loss (the Bag of Tricks uses 0.1).")
    g.add_argument("--local_loss_weight", type=argtypes.positive_float, default=D.local_loss_weight,
                   help="--local_branch: weight of the local triplet loss: for each anchor's hardest "
                        "positive and negative by the global distance (as batch_hard), the local distances "
                        "(stripe distances normalised by (e^d - 1) / (e^d + 1), shortest path from the top "
                        "to the bottom stripes), with --margin.")
    g.add_argument("--center_loss_weight", type=argtypes.nonnegative_float, default=D.center_loss_weight,
                   help="Weight of the centre loss on the metric feature (the Bag of Tricks uses 0.0005); "
                        "0: off.")
    g.add_argument("--center_learning_rate", type=argtypes.positive_float, default=D.center_learning_rate,
                   help="Learning rate of the centres' own SGD update (on the unweighted centre loss).")
    g.add_argument("--spectral_transform", action="store_true",
                   help="The triplet loss sees the batch's spectrally transformed features (Luo et al. 2018, "
                        "pytorch-reid-lite): each replaced by the batch's features weighted by "
                        "softmax(cosine / --spectral_sigma). Training only; the embedding is unchanged.")
    g.add_argument("--spectral_sigma", type=argtypes.positive_float, default=D.spectral_sigma,
                   help="The temperature of --spectral_transform's weights.")
    # identification classifier (issue 12)
    g.add_argument("--classifier", choices=sorted(registries.CLASSIFIERS), default=D.classifier,
                   help="The identification loss's classifier (with --id_loss_weight). "
                        + registries.CLASSIFIERS.help() + ". The margin kinds L2-normalise the feature and "
                        "the class weights; label smoothing applies to all.")
    g.add_argument("--classifier_scale", type=argtypes.positive_float, default=D.classifier_scale,
                   help="The scale s of a margin classifier. Default: the classifier's (cosface 30, arcface "
                        "30, circle 64); not used by softmax.")
    g.add_argument("--classifier_margin", type=argtypes.nonnegative_float, default=D.classifier_margin,
                   help="The margin m of a margin classifier (arcface: an angle in radians). Default: the "
                        "classifier's (cosface 0.35, arcface 0.5, circle 0.35); not used by softmax.")
    _metric_loss_arguments(p)
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=sorted(registries.OPTIMIZERS), default=D.optimizer,
                   help=registries.OPTIMIZERS.help() + ".")
    g.add_argument("--weight_decay", type=argtypes.nonnegative_float, default=D.weight_decay,
                   help="Decoupled weight decay of adamw and sgd.")
    g.add_argument("--momentum", type=argtypes.unit_float, default=D.momentum, help="Momentum of sgd.")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd).")
    g.add_argument("--learning_rate", type=argtypes.positive_float, default=D.learning_rate,
                   help="Initial learning rate.")
    g.add_argument("--train_iterations", type=argtypes.positive_int, default=D.train_iterations,
                   help="Number of training iterations (batches).")
    g.add_argument("--lr_schedule", choices=sorted(registries.SCHEDULES), default=D.lr_schedule,
                   help=registries.SCHEDULES.help() + ".")
    g.add_argument("--decay_start_iteration", type=int, default=D.decay_start_iteration,
                   help="exponential: the iteration at which the learning rate starts decaying, reaching "
                        "0.001x at --train_iterations; -1 disables decay.")
    g.add_argument("--lr_milestones", type=_milestones, default=D.lr_milestones,
                   help="multistep: the iterations at which the learning rate is multiplied by --lr_gamma, "
                        "e.g. 4000,7000.")
    g.add_argument("--lr_gamma", type=argtypes.positive_float, default=D.lr_gamma,
                   help="multistep: the factor applied at each milestone.")
    g.add_argument("--warmup_iterations", type=argtypes.nonnegative_int, default=D.warmup_iterations,
                   help="Linear warm-up over this many iterations, from --warmup_factor x the learning "
                        "rate (with any schedule); 0: off.")
    g.add_argument("--warmup_factor", type=argtypes.positive_float, default=D.warmup_factor,
                   help="The learning-rate factor the warm-up starts from, in (0, 1].")
    g.add_argument("--freeze_backbone_iterations", type=argtypes.nonnegative_int,
                   default=D.freeze_backbone_iterations,
                   help="Train only the new layers (head, pooling, classifier) for this many iterations "
                        "first; the backbone's batch-norm statistics still update.")
    g.add_argument("--layer_lr_decay", type=argtypes.positive_float, default=D.layer_lr_decay,
                   help="keras-hub ViTs: layer-wise learning-rate decay: transformer block i of L gets the "
                        "learning rate times decay^(L + 1 - i), the token embedding decay^(L + 1), the final "
                        "norm and the new layers the learning rate itself (each depth an optimizer of its "
                        "own). "
                        "In (0, 1]; 1: off (e.g. 0.65 as BEiT).")
    g.add_argument("--new_layers_lr_multiplier", type=argtypes.positive_float,
                   default=D.new_layers_lr_multiplier,
                   help="Learning rate of the new layers (pooling, head, classifier) as a multiple of the "
                        "backbone's, e.g. 10 as open-reid for a pretrained backbone; they then get an "
                        "optimizer of their own.")
    g = p.add_argument_group("distillation")
    g.add_argument("--teacher", type=argtypes.readable_directory, default=D.teacher,
                   help="The experiment root of a trained trinet model (its latest checkpoint), frozen, "
                        "whose outputs teach this run; its backbone may differ. The checkpoint used (path "
                        "and SHA-256) is recorded in this run's checkpoints, and --resume reloads exactly "
                        "that one. A teacher whose run still holds its lock is refused unless "
                        "--teacher_checkpoint names one.")
    g.add_argument("--teacher_checkpoint", default=D.teacher_checkpoint,
                   help="A checkpoint of --teacher (a step, a name such as checkpoint-25000, best, or a "
                        "path), e.g. a finished one of a run that still trains. Default: its latest.")
    g.add_argument("--distill_logits_weight", type=argtypes.nonnegative_float,
                   default=D.distill_logits_weight,
                   help="Weight of the KL divergence from the teacher's to the student's class probabilities "
                        "(softened by --distill_temperature, times its square). Both need a classifier over "
                        "the same training identities.")
    g.add_argument("--distill_distance_weight", type=argtypes.nonnegative_float,
                   default=D.distill_distance_weight,
                   help="Weight of the term matching the student's batch distance matrix to the teacher's "
                        "(each divided by its mean distance; Huber loss; relational distillation).")
    g.add_argument("--distill_temperature", type=argtypes.positive_float, default=D.distill_temperature,
                   help="Temperature of the softened class probabilities of --distill_logits_weight.")
    g = p.add_argument_group("deep mutual learning")
    g.add_argument("--mutual_models", type=argtypes.positive_int, default=D.mutual_models,
                   help="Train this many networks together (deep mutual learning, as AlignedReID): each with "
                        "its own losses plus the mutual terms below, on the same batches. Network 0 is the "
                        "run's model (model.keras, validation); network i is saved in the checkpoints and "
                        "as model_member<i>.keras.")
    g.add_argument("--mutual_logits_weight", type=argtypes.nonnegative_float, default=D.mutual_logits_weight,
                   help="Weight of each network's KL divergence to the others' class probabilities (needs "
                        "--id_loss_weight).")
    g.add_argument("--mutual_distance_weight", type=argtypes.nonnegative_float,
                   default=D.mutual_distance_weight,
                   help="Weight of the matching of each network's batch distance matrix to the others' "
                        "(as --distill_distance_weight).")
    g = p.add_argument_group("devices and precision")
    g.add_argument("--distribute", choices=sorted(DISTRIBUTE), default=D.distribute,
                   help="Data-parallel training: " + "; ".join(f"{k}: {v}" for k, v in DISTRIBUTE.items())
                        + ". --batch_p and --batch_k stay the global batch; each replica gets batch_p / "
                          "replicas whole identities. May change on --resume.")
    g.add_argument("--cross_replica_mining", action="store_true",
                   help="Mine the triplets over the global batch (embeddings and labels are all-gathered, "
                        "differentiably), as on one device. Without it each replica mines its own "
                        "identities (as fast-reid).")
    g.add_argument("--sync_batchnorm", action="store_true",
                   help="Batch-norm statistics over the global batch (Keras' synchronized batch norm) "
                        "instead of per replica. With --cross_replica_mining, a run reproduces the "
                        "single-device run.")
    g.add_argument("--mixed_precision", choices=sorted(MIXED_PRECISION), default=D.mixed_precision,
                   help="Compute in low precision; variables, distances and losses stay float32. "
                        + "; ".join(f"{k}: {v}" for k, v in MIXED_PRECISION.items()) + ".")
    g.add_argument("--jit_compile", action="store_true",
                   help="Compile the training step with XLA. For GPUs: on CPUs it is usually slower (XLA's "
                        "CPU convolutions do not use oneDNN). May change on --resume.")
    g = p.add_argument_group("validation during training")
    g.add_argument("--val_query", type=argtypes.readable_file, default=D.val_query,
                   help="CSV of validation queries; with --val_gallery and --val_excluder, the run embeds "
                        "and evaluates them every --val_frequency iterations, logs mAP, mINP and rank-1, "
                        "and keeps the best model as best.h5 (by (mAP + rank-1) / 2; embed.py --checkpoint "
                        "best).")
    g.add_argument("--val_gallery", type=argtypes.readable_file, default=D.val_gallery,
                   help="CSV of the validation gallery.")
    g.add_argument("--val_image_root", type=argtypes.readable_directory, default=D.val_image_root,
                   help="Folder the validation CSVs' paths are relative to. Default: --image_root.")
    g.add_argument("--val_excluder", choices=sorted(EXCLUDERS), default=D.val_excluder,
                   help="The validation set's protocol, as evaluate.py's --excluder.")
    g.add_argument("--val_identities", type=argtypes.positive_int, default=D.val_identities,
                   help="Instead of --val_query/--val_gallery: hold this many identities of the training set "
                        "out of training as the validation set, split into query and gallery by the "
                        "protocol of --val_excluder (one query image per identity and camera for a camera "
                        "excluder; the same identities on --resume). AlignedReID's partitions hold out 100.")
    g.add_argument("--val_fraction", type=argtypes.unit_float, default=D.val_fraction,
                   help="As --val_identities, with this fraction of the training identities (at least 1).")
    g.add_argument("--val_frequency", type=argtypes.positive_int, default=D.val_frequency,
                   help="Validate every this many iterations (and at the end).")
    _unlabeled_arguments(p)
    g = p.add_argument_group("checkpoints and logs")
    g.add_argument("--checkpoint_frequency", type=argtypes.nonnegative_int, default=D.checkpoint_frequency,
                   help="Save a checkpoint every this many iterations; 0 saves only at the end (and at "
                        "an interruption).")
    g.add_argument("--keep_checkpoints", type=argtypes.positive_int, default=D.keep_checkpoints,
                   help="How many of the newest checkpoints to keep (checkpoint-0, the untrained model, "
                        "is always kept).")
    g.add_argument("--log_frequency", type=argtypes.positive_int, default=D.log_frequency,
                   help="Write a log line and TensorBoard scalars every this many iterations.")
    g.add_argument("--histogram_frequency", type=argtypes.nonnegative_int, default=D.histogram_frequency,
                   help="Write TensorBoard histograms (losses, distances, embedding norms) every this "
                        "many iterations; 0 disables them.")
    g.add_argument("--detailed_logs", action="store_true",
                   help="Also store every batch's embeddings, per-sample losses and image paths as "
                        "memory-mapped .npy files in the experiment root, one row per iteration.")
    return p


def _unlabeled_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of learning without labels (issue 21): pseudo labels of clusters of an unlabeled set."""
    g = p.add_argument_group(
        "learning without labels", "Train on an unlabeled set with pseudo labels (Cluster Contrast, Dai et "
        "al. 2021): at the start and every --recluster_frequency iterations the set is embedded with the "
        "current model (one view, --test_feature), clustered by DBSCAN on the k-reciprocal Jaccard distance, "
        "and training draws P x K batches of the clusters (outliers are left out until the next clustering). "
        "To adapt a trained model to new cameras, give its experiment root as --initial_checkpoint; without "
        "one the run learns from ImageNet (--initial_checkpoint imagenet) or from scratch.")
    g.add_argument("--unlabeled_set", type=argtypes.readable_file, default=D.unlabeled_set,
                   help="The images to learn from without labels, instead of --train_set: a plain list of "
                        "image paths (one a line), or a dataset CSV (.csv) whose identities are not used for "
                        "training, only as a diagnostic of the pseudo labels' quality (ARI, NMI, pair "
                        "precision and recall in the log and TensorBoard). Its images are all decoded up "
                        "front; --skip_missing and --on_bad_image apply as to --train_set.")
    g.add_argument("--unlabeled_image_root", type=argtypes.readable_directory, default=D.unlabeled_image_root,
                   help="Folder the paths of --unlabeled_set are relative to.")
    g.add_argument("--recluster_frequency", type=argtypes.positive_int, default=D.recluster_frequency,
                   help="Cluster the unlabeled set again every this many iterations (and at the start); each "
                        "clustering starts a new pass over its clusters.")
    g.add_argument("--cluster_eps", type=argtypes.positive_float, default=D.cluster_eps,
                   help="DBSCAN's eps: the Jaccard distance (in (0, 1)) under which two images are "
                        "neighbours. Smaller: more, purer clusters and more outliers.")
    g.add_argument("--cluster_min_samples", type=argtypes.positive_int, default=D.cluster_min_samples,
                   help="DBSCAN's min_samples: the neighbours (itself included) that make an image a core "
                        "point. The unlabeled set needs at least twice as many images.")
    g.add_argument("--cluster_k1", type=argtypes.positive_int, default=D.cluster_k1,
                   help="k1 of the k-reciprocal Jaccard distance (the re-ranking of Zhong et al. 2017).")
    g.add_argument("--cluster_k2", type=argtypes.positive_int, default=D.cluster_k2,
                   help="k2 of the Jaccard distance: its local query expansion (at most --cluster_k1).")
    g.add_argument("--cluster_camera_norm", action="store_true",
                   help="Cluster the embeddings after taking from each L2-normalised embedding the mean of "
                        "its camera's (then normalising again), so that the clusters gather people across "
                        "cameras rather than each camera's look. Needs the camera of every unlabeled image: "
                        "a `camera` column of --unlabeled_set, or file names in a release's naming. The "
                        "memory is still set to the clusters' centroids of the embeddings themselves.")
    g.add_argument("--memory_loss_weight", type=argtypes.nonnegative_float, default=D.memory_loss_weight,
                   help="Weight of the cluster-memory InfoNCE loss (the objective term `memory`): each "
                        "embedding against one memory entry per cluster, set to the cluster centroids at "
                        "each clustering and momentum-updated after each step; 0: off. Cluster Contrast "
                        "trains with it alone (--triplet_loss_weight 0).")
    g.add_argument("--memory_temperature", type=argtypes.positive_float, default=D.memory_temperature,
                   help="Temperature of the memory loss's softmax over the cosine similarities.")
    g.add_argument("--memory_momentum", type=argtypes.unit_float, default=D.memory_momentum,
                   help="Momentum m of the memory update: entry <- m x entry + (1 - m) x a batch "
                        "feature of its cluster (L2-normalised), then L2-normalised.")
    g.add_argument("--memory_update", choices=sorted(registries.MEMORY_UPDATES), default=D.memory_update,
                   help="How the batch moves the memory: " + registries.MEMORY_UPDATES.help() + ".")


def _metric_loss_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of the metric-learning losses (`registries.METRIC_LOSSES`; issue 23)."""
    g = p.add_argument_group(
        "metric-learning losses", "Each loss is added to the objective with its weight (0: off) and sees the "
        "L2-normalised metric feature (with bnneck, the feature before its batch norm, as the triplet loss); "
        "compare the embeddings by cosine (--test_metric cosine). The pair-based ones need positives in the "
        "batch (--sampler pk, pk_camera or pk_clips, --batch_k >= 2); the proxy ones work with any sampler.")
    for name in registries.METRIC_LOSSES:
        entry = registries.metric_loss(name)
        g.add_argument(f"--{entry.weight}", type=argtypes.nonnegative_float, default=getattr(D, entry.weight),
                       help=f"Weight of the {name} loss ({entry.paper}): {entry.help}; 0: off.")
    g.add_argument("--contrastive_pos_margin", type=float, default=D.contrastive_pos_margin,
                   help="contrastive: positive pairs closer than this (euclidean, unit embeddings) cost "
                        "nothing.")
    g.add_argument("--contrastive_neg_margin", type=float, default=D.contrastive_neg_margin,
                   help="contrastive: negative pairs further than this cost nothing.")
    g.add_argument("--ms_alpha", type=float, default=D.ms_alpha,
                   help="multi_similarity: the scale of the positive pairs' term (alpha).")
    g.add_argument("--ms_beta", type=float, default=D.ms_beta,
                   help="multi_similarity: the scale of the negative pairs' term (beta).")
    g.add_argument("--ms_base", type=float, default=D.ms_base,
                   help="multi_similarity: the similarity the pairs are pushed from (lambda).")
    g.add_argument("--ms_epsilon", type=float, default=D.ms_epsilon,
                   help="multi_similarity: the mining's margin: a negative is kept if its similarity + "
                        "epsilon exceeds the anchor's least similar positive, a positive if its similarity - "
                        "epsilon is below the anchor's most similar negative.")
    g.add_argument("--lifted_margin", type=float, default=D.lifted_margin,
                   help="lifted_structure: the margin of the negatives' distances.")
    g.add_argument("--supcon_temperature", type=float, default=D.supcon_temperature,
                   help="supcon: the temperature tau dividing the cosine similarities.")
    g.add_argument("--circle_pair_margin", type=float, default=D.circle_pair_margin,
                   help="circle_pair: the relaxation m (optima 1 + m and -m, decision margins 1 - m and m; "
                        "the paper's 0.4 for image retrieval, 0.25 for faces).")
    g.add_argument("--circle_pair_gamma", type=float, default=D.circle_pair_gamma,
                   help="circle_pair: the scale gamma (the paper's 80 for image retrieval, 256 for faces).")
    g.add_argument("--proxy_nca_scale", type=float, default=D.proxy_nca_scale,
                   help="proxy_nca: the norm given to the embeddings and proxies (the distances are 2 s^2 "
                        "(1 - cos)).")
    g.add_argument("--proxy_anchor_alpha", type=float, default=D.proxy_anchor_alpha,
                   help="proxy_anchor: the scale alpha.")
    g.add_argument("--proxy_anchor_delta", type=float, default=D.proxy_anchor_delta,
                   help="proxy_anchor: the margin delta.")
    g.add_argument("--proxy_lr_multiplier", type=float, default=D.proxy_lr_multiplier,
                   help="The proxies' learning rate as a multiple of --learning_rate (their own optimizer, "
                        "of --optimizer's kind; Proxy-Anchor's 100).")


def _given(parser: argparse.ArgumentParser, argv: Sequence[str], dests: Sequence[str]) -> dict[str, Any]:
    """The values of the options actually given in `argv`: a second parse into a namespace that already
    holds a marker for every option (argparse fills in defaults only for options missing from it, and
    resolves abbreviations and `--flag=value` itself)."""
    unset = object()
    namespace = parser.parse_args(argv, namespace=argparse.Namespace(**{dest: unset for dest in dests}))
    return {dest: value for dest, value in vars(namespace).items() if value is not unset}


def _settings(values: dict[str, Any]) -> TrainSettings:
    values = dict(values)
    for key in PATH_SETTINGS:
        if values.get(key) is not None:
            values[key] = os.path.abspath(values[key])
    preset = values.get("backbone_preset")
    if preset is not None and hub.is_local(preset):  # a local preset folder, as the paths above
        values["backbone_preset"] = os.path.abspath(preset)
    return TrainSettings(**values)


def _check(settings: TrainSettings, parser: argparse.ArgumentParser) -> None:
    try:
        settings.validate()
    except TrinetError as e:
        parser.error(str(e))


def resolve_settings(parser: argparse.ArgumentParser, argv: Sequence[str]) -> TrainSettings:
    """Parse `argv` into settings; on --resume, the settings saved in args.json (flags given that differ
    are reported and ignored)."""
    from trinet.rundir import experiment

    args = parser.parse_args(argv)
    if not args.resume:
        if args.test_feature is None and args.head_name == "bnneck":
            args.test_feature = "after"
        # issue 12: args.json records the scale and margin a margin classifier trains with
        if args.classifier != "softmax" and args.classifier in registries.CLASSIFIERS:
            scale, margin = _settings(vars(args)).classifier_parameters
            args.classifier_scale, args.classifier_margin = scale, margin
        settings = _settings(vars(args))
        _check(settings, parser)
        return settings
    root = args.experiment_root
    saved = experiment.load_args(root)
    path = os.path.join(root, experiment.ARGS_FILE)
    settings, lacking = TrainSettings.from_saved(saved, path, experiment_root=root, resume=True)
    if lacking and len(lacking) < len(TrainSettings.__dataclass_fields__) - len(NOT_SAVED):
        log.info("%s predates %d settings (%s); they keep their defaults, which train as that version did.",
                 path, len(lacking), ", ".join(lacking))
    elif lacking:
        raise TrinetError(f"{path} holds none of the run's settings; restore it (its values are also listed "
                          "at the top of train.log).")
    for key, value in sorted(_given(parser, argv, list(vars(args))).items()):
        if key in RUNTIME and value != getattr(settings, key):
            log.info("--%s %s replaces the resumed run's %r.", key, value, getattr(settings, key))
            settings = settings.replace(**{key: value})
        elif key not in NOT_SAVED and value != getattr(settings, key):
            log.warning("--%s %s differs from the resumed run's %r; using the saved value.", key, value,
                        getattr(settings, key))
    try:
        settings.validate()
    except TrinetError as e:
        raise TrinetError(f"{path} holds settings this version refuses: {e}. Fix or restore the "
                          "file.") from None
    for key in PATH_SETTINGS:
        value = getattr(settings, key)
        if value is not None and not os.path.exists(value):
            hint = (" (a relative path, from the folder the run was started in: run from there, or make it "
                    "absolute in args.json)" if not os.path.isabs(value) else "")
            raise TrinetError(f"{path}: --{key} {value} does not exist{hint}.")
    return settings


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_console_logging()
    parser = build_parser()
    settings = resolve_settings(parser, argv)
    import_tensorflow_quietly()
    # TensorFlow is imported only now, after the arguments are checked.
    from trinet.training.engine import train
    return train(settings)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
