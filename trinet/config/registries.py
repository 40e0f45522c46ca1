"""Registries of the training choices whose code needs TensorFlow: losses (triplet and metric-learning),
poolings, batch norms, optimizers, schedules and identification classifiers.

Each registry is the one list of its choices. An entry names its implementation as `module:attribute`
and imports it only when it is used, so that `train.py --help` and the checks at parse time stay fast.
The command line takes its `choices` and help text from here. Backbones (`trinet.models.backbones`), heads
(`trinet.models.heads`) and samplers (`trinet.pipeline.sampling`) keep their registries beside their code,
which is cheap to import.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Iterable, Iterator, Mapping

from trinet.core.errors import TrinetError


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered choice: where its implementation is, and a one-line description for `--help`."""

    target: str
    help: str


class Registry(Mapping[str, Entry]):
    """Name -> `Entry`; `resolve(name)` imports and returns the implementation."""

    def __init__(self, family: str, entries: dict[str, Entry]):
        self.family, self._entries = family, dict(entries)

    def __getitem__(self, name: str) -> Entry:
        if name not in self._entries:
            raise ValueError(f"Unknown {self.family} {name!r}; expected one of {sorted(self._entries)}")
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, name: str) -> Any:
        module, attribute = self[name].target.split(":")
        return getattr(importlib.import_module(module), attribute)

    def help(self) -> str:
        """`name: description; ...` for an argparse help string."""
        return "; ".join(f"{name}: {entry.help}" for name, entry in self._entries.items())


def check(flag: str, value: Any, choices: Iterable[str]) -> None:
    """Raise TrinetError unless `value` is one of `choices` (the message names the flag and the choices)."""
    choices = sorted(choices)
    if value not in choices:
        raise TrinetError(f"{flag} {value!r} is not one of {', '.join(choices)}")


#: Triplet losses: `(dists (B, B), labels (B,), margin) -> (loss, per_anchor (B,))`.
LOSSES = Registry("loss", {
    "batch_hard": Entry("trinet.losses.triplet:batch_hard",
                        "per anchor, the hardest positive and the hardest negative of the batch"),
    "batch_all": Entry("trinet.losses.triplet:batch_all",
                       "every valid triplet of the batch, averaged over the non-zero ones"),
})


@dataclasses.dataclass(frozen=True)
class MetricLossEntry(Entry):
    """A metric-learning loss term: its function (`target`, `(embeddings (B, D), labels (B,)[, proxies
    (C, D)], **parameters) -> (B,)`), the `TrainSettings` field of its weight (also the objective's flag,
    `--<weight>`), its parameters as `(settings field, keyword of the function)` pairs, whether it learns a
    `(C, D)` proxy per training class, and its paper."""

    weight: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    proxies: bool = False
    paper: str = ""


#: Metric-learning losses (weights `--contrastive_loss_weight`, ...; `trinet.training.objectives` adds each
#: of weight > 0 to the objective). Each sees the `metric` output, L2-normalised
#: (`trinet.losses.metric_learning`, `trinet.losses.proxies`). The pair-based ones need positives in the
#: batch (`--sampler pk`, ...).
METRIC_LOSSES = Registry("metric-learning loss", {
    "contrastive": MetricLossEntry(
        "trinet.losses.metric_learning:contrastive",
        "[d - pos_margin]+ for positive pairs, [neg_margin - d]+ for negative pairs (d: euclidean distance "
        "of the unit embeddings), each averaged over its pairs of non-zero loss",
        weight="contrastive_loss_weight",
        parameters=(("contrastive_pos_margin", "pos_margin"), ("contrastive_neg_margin", "neg_margin")),
        paper="Hadsell, Chopra, LeCun 2006 (pytorch-metric-learning's form)"),
    "multi_similarity": MetricLossEntry(
        "trinet.losses.metric_learning:multi_similarity",
        "multi-similarity loss on cosine similarities, with its pair mining",
        weight="ms_loss_weight",
        parameters=(("ms_alpha", "alpha"), ("ms_beta", "beta"), ("ms_base", "base"),
                    ("ms_epsilon", "epsilon")),
        paper="Wang et al. 2019, CVPR"),
    "lifted_structure": MetricLossEntry(
        "trinet.losses.metric_learning:lifted_structure",
        "lifted structured loss (its smooth form) on euclidean distances of the unit embeddings",
        weight="lifted_loss_weight", parameters=(("lifted_margin", "margin"),),
        paper="Song et al. 2016, CVPR"),
    "supcon": MetricLossEntry(
        "trinet.losses.metric_learning:supcon",
        "supervised contrastive loss (L_out) on cosine similarities / temperature",
        weight="supcon_loss_weight", parameters=(("supcon_temperature", "temperature"),),
        paper="Khosla et al. 2020, NeurIPS"),
    "circle_pair": MetricLossEntry(
        "trinet.losses.metric_learning:circle_pair",
        "circle loss with pair-wise labels on cosine similarities, per anchor",
        weight="circle_pair_loss_weight",
        parameters=(("circle_pair_margin", "margin"), ("circle_pair_gamma", "gamma")),
        paper="Sun et al. 2020, CVPR"),
    "proxy_nca": MetricLossEntry(
        "trinet.losses.proxies:proxy_nca",
        "NCA of each embedding against one learnt proxy per class (both normalised, times the scale)",
        weight="proxy_nca_loss_weight", parameters=(("proxy_nca_scale", "scale"),), proxies=True,
        paper="Movshovitz-Attias et al. 2017, ICCV"),
    "proxy_anchor": MetricLossEntry(
        "trinet.losses.proxies:proxy_anchor",
        "proxy-anchor loss: each proxy against the batch's samples of its class and of the others",
        weight="proxy_anchor_loss_weight",
        parameters=(("proxy_anchor_alpha", "alpha"), ("proxy_anchor_delta", "delta")), proxies=True,
        paper="Kim et al. 2020, CVPR"),
})


def metric_loss(name: str) -> MetricLossEntry:
    """The registered metric-learning loss `name`."""
    entry = METRIC_LOSSES[name]
    assert isinstance(entry, MetricLossEntry)
    return entry


#: Global poolings of the backbone's feature map: `name=... -> keras layer (B, H, W, C) -> (B, C)`.
POOLINGS = Registry("pooling", {
    "avg": Entry("trinet.models.pooling:average_pooling", "global average pooling (the original)"),
    "max": Entry("trinet.models.pooling:max_pooling", "global max pooling"),
    "gem": Entry("trinet.models.pooling:gem_pooling", "generalised mean pooling with a learnable power p"),
    "token": Entry("trinet.models.pooling:class_token", "a transformer's class token (--model_name keras_hub "
                   "with a ViT, DINOv2 or CLIP preset; TransReID's)"),
})

#: Batch-norm layers (Keras' arguments; the same variables, so checkpoints load into either).
BATCH_NORMS = Registry("batch norm", {
    "fused": Entry("trinet.models.layers:FusedBatchNormalization",
                   "TensorFlow's fused kernel (faster; equal to keras within float rounding)"),
    "keras": Entry("keras.layers:BatchNormalization",
                   "Keras' own layer, unfused on TensorFlow (what runs before --batch_norm used)"),
})

#: Optimizers: `(learning-rate schedule, settings, name=...) -> keras optimizer`.
OPTIMIZERS = Registry("optimizer", {
    "adam": Entry("trinet.training.optimizers:adam", "Adam (epsilon 1e-8, as the original)"),
    "adamw": Entry("trinet.training.optimizers:adamw", "Adam with decoupled weight decay (--weight_decay)"),
    "sgd": Entry("trinet.training.optimizers:sgd", "SGD with --momentum (and --nesterov), with "
                                                   "--weight_decay"),
})

#: Learning-rate schedules (Keras LearningRateSchedule classes; `trinet.training.schedule.make_schedule`
#: builds them).
SCHEDULES = Registry("schedule", {
    "exponential": Entry("trinet.training.schedule:TrinetSchedule",
                         "the original: constant, then exponential decay from --decay_start_iteration "
                         "to 0.001x at the end"),
    "multistep": Entry("trinet.training.schedule:MultiStep",
                       "multiplied by --lr_gamma at each of --lr_milestones"),
    "cosine": Entry("trinet.training.schedule:Cosine", "half a cosine from the learning rate to 0"),
})


@dataclasses.dataclass(frozen=True)
class ClassifierEntry(Entry):
    """A classifier kind: its margin function (`target`) and its default scale and margin (None: the kind
    has none)."""

    scale: float | None = None
    margin: float | None = None


#: Identification classifiers (`--classifier`). Each names its margin function `(cosines (B, C), labels (B,),
#: scale, margin) -> (B, C) logits for the cross-entropy`; softmax is today's bias-free linear classifier,
#: whose logits the loss takes as they are. The margin kinds L2-normalise features and class weights.
CLASSIFIERS = Registry("classifier", {
    "softmax": ClassifierEntry("trinet.losses.classification:linear_logits",
                               "a bias-free linear classifier (initialised with std 0.001), plain softmax"),
    "cosface": ClassifierEntry("trinet.losses.classification:cosface_logits",
                               "CosFace / AM-softmax: s (cos - m) for the true class, s cos for the others "
                               "(default s 30, m 0.35)", scale=30.0, margin=0.35),
    "arcface": ClassifierEntry("trinet.losses.classification:arcface_logits",
                               "ArcFace: s cos(theta + m) for the true class (s (cos - m sin m) where "
                               "theta + m > pi), s cos for the others (default s 30, m 0.5)",
                               scale=30.0, margin=0.5),
    "circle": ClassifierEntry("trinet.losses.classification:circle_logits",
                              "circle loss's softmax form: s [1 + m - cos]+ (cos - 1 + m) for the true "
                              "class, s [cos + m]+ (cos - m) for the others (default s 64, m 0.35)",
                              scale=64.0, margin=0.35),
})


def classifier_defaults(name: str) -> ClassifierEntry:
    """The registered classifier `name` (its defaults: `.scale`, `.margin`)."""
    entry = CLASSIFIERS[name]
    assert isinstance(entry, ClassifierEntry)
    return entry


#: Cluster-memory update rules (`--memory_update`): `(memory (C, D), features (B, D) normalised, labels (B,),
#: momentum) -> memory`; `trinet.losses.memory.updated_memory` dispatches on the name.
MEMORY_UPDATES = Registry("memory update", {
    "mean": Entry("trinet.losses.memory:mean_update",
                  "each sample in batch order moves its cluster's entry, m = momentum m + (1 - momentum) f, "
                  "renormalised (Cluster Contrast)"),
    "hard": Entry("trinet.losses.memory:hard_update",
                  "per cluster in the batch, only the sample least similar to its entry moves it, as in mean "
                  "(Cluster Contrast's hard variant)"),
})
