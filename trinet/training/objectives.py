"""The training objective: a weighted list of loss terms.

Each term is a pure function of `(outputs, labels)` returning a `(B,)` per-sample loss whose batch
mean is the term's value. `outputs` is the model's dict (float32) plus `dists`, the `(B, B)` distance
matrix of the `metric` outputs (with `--local_branch`, also `local`, `(B, S, D)`). The total loss is the
weighted sum of the terms' means.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf

from trinet.losses import classification, triplet

from trinet.config.registries import CLASSIFIERS, LOSSES, METRIC_LOSSES, metric_loss
from trinet.training import distillation

#: `(outputs, labels (B,)) -> (B,)` per-sample loss.
TermFn = Callable[[dict[str, tf.Tensor], tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class Objective:
    """One weighted term of the training loss (its name appears in train.log and TensorBoard)."""

    name: str
    weight: float
    fn: TermFn


def triplet_term(loss: str, margin: float | str) -> TermFn:
    """The triplet loss `loss` (batch_hard, batch_all) on `outputs['dists']`."""
    if loss == "batch_all":
        return lambda outputs, labels: triplet.batch_all_contributions(outputs["dists"], labels, margin)
    loss_fn = LOSSES.resolve(loss)
    return lambda outputs, labels: loss_fn(outputs["dists"], labels, margin)[1]


def identification_term(label_smoothing: float, classifier: str = "softmax", scale: float | None = None,
                        margin: float | None = None) -> TermFn:
    """Softmax cross-entropy of `outputs['logits']` with label smoothing. For a margin classifier
    (`trinet.config.registries.CLASSIFIERS`), `outputs['logits']` are `scale` x cosines: the cross-entropy is
    of the classifier's margin logits of those cosines and the labels."""
    if classifier == "softmax":
        return _per_part(lambda logits, labels: classification.cross_entropy(logits, labels, label_smoothing))
    if scale is None or margin is None:
        raise ValueError(f"the {classifier} classifier needs its scale and margin. Received: "
                         f"scale={scale!r}, margin={margin!r}")
    margin_logits = CLASSIFIERS.resolve(classifier)

    def term(logits, labels):
        cosines = logits / scale
        margined = margin_logits(cosines, labels, scale, margin)
        return classification.cross_entropy(margined, labels, label_smoothing)
    return _per_part(term)


def _per_part(loss):
    """A term from `loss((N, C) logits, (N,) labels) -> (N,)`: of `outputs['logits']` `(B, C)`, or for
    PCB's `(B, P, C)` the mean over the P parts of each part's loss."""
    def term(outputs, labels):
        logits = outputs["logits"]
        if logits.shape.rank == 2:
            return loss(logits, labels)
        parts, classes = logits.shape[1], tf.shape(logits)[2]
        flat = loss(tf.reshape(logits, (-1, classes)), tf.repeat(labels, parts))
        return tf.reduce_mean(tf.reshape(flat, (-1, parts)), axis=1)
    return term


def local_term(margin: float | str) -> TermFn:
    """AlignedReID's local triplet loss (`triplet.local_triplet`) of `outputs['local']` `(B, S, D)` on the
    hardest pairs of the global `outputs['dists']`."""
    return lambda outputs, labels: triplet.local_triplet(outputs["dists"], outputs["local"], labels, margin)


def center_term(centers: tf.Variable) -> TermFn:
    """Squared distance of `outputs['metric']` to its identity's centre (a `(C, D)` variable)."""
    return lambda outputs, labels: classification.center_loss(outputs["metric"], labels, centers)


def metric_learning_term(name: str, parameters: dict[str, float],
                         proxies: tf.Variable | None = None) -> TermFn:
    """The metric-learning loss `name` of `trinet.config.registries.METRIC_LOSSES` on `outputs['metric']`
    (with BNNeck, the feature before its batch norm, as the triplet loss), with its `parameters` (the
    function's keywords) and, for a proxy loss, its `(C, D)` proxies."""
    fn = METRIC_LOSSES.resolve(name)
    if metric_loss(name).proxies:
        if proxies is None:
            raise ValueError(f"the {name} loss needs its proxies variable")
        return lambda outputs, labels: fn(outputs["metric"], labels, proxies, **parameters)
    return lambda outputs, labels: fn(outputs["metric"], labels, **parameters)


def memory_term(pseudo, temperature: float) -> TermFn:
    """The cluster-memory InfoNCE loss (`trinet.losses.memory.memory_loss`) of `outputs['embedding']` (the
    feature the clusters and their centroids are of) against the memory of `pseudo`
    (`trinet.training.pseudo_labels.PseudoState`: `(N, D)` entries, the first `num_clusters` active); the
    labels are the batch's clusters."""
    from trinet.losses.memory import memory_loss

    def term(outputs, labels):
        return memory_loss(outputs["embedding"], labels, tf.convert_to_tensor(pseudo.memory), temperature,
                           pseudo.active())
    return term


def build_objectives(settings, centers: tf.Variable | None = None,
                     teacher_metric: str | None = None,
                     proxies: dict[str, tf.Variable] | None = None, pseudo=None) -> list[Objective]:
    """The weighted terms of a `TrainSettings` run (terms of weight 0 are left out); the distillation
    terms need the outputs `teacher_logits` / `teacher_metric`
    (`trinet.training.distillation.Teacher.outputs`), whose distances are taken with `teacher_metric`;
    `proxies`: the `(C, D)` variable of each proxy loss, by name; `pseudo`: the pseudo labels' variables
    (`trinet.training.pseudo_labels.PseudoState`) of the memory term."""
    terms = []
    if settings.triplet_loss_weight:
        terms.append(Objective("triplet", settings.triplet_loss_weight,
                               triplet_term(settings.loss, settings.margin)))
    if settings.id_loss_weight:
        terms.append(Objective("id", settings.id_loss_weight,
                               identification_term(settings.label_smoothing, settings.classifier,
                                                   *settings.classifier_parameters)))
    if settings.local_branch and settings.local_loss_weight:
        terms.append(Objective("local", settings.local_loss_weight, local_term(settings.margin)))
    if settings.center_loss_weight:
        if centers is None:
            raise ValueError("the centre loss needs its centres variable")
        terms.append(Objective("center", settings.center_loss_weight, center_term(centers)))
    for name in settings.metric_losses:
        entry = metric_loss(name)
        parameters = {keyword: getattr(settings, field) for field, keyword in entry.parameters}
        terms.append(Objective(name, getattr(settings, entry.weight),
                               metric_learning_term(name, parameters, (proxies or {}).get(name))))
    if settings.memory_loss_weight:
        if pseudo is None or pseudo.memory is None:
            raise ValueError("the memory loss needs the cluster memory")
        terms.append(Objective("memory", settings.memory_loss_weight,
                               memory_term(pseudo, settings.memory_temperature)))
    if settings.distill_logits_weight:
        terms.append(Objective("distill_logits", settings.distill_logits_weight,
                               distillation.logits_term(settings.distill_temperature)))
    if settings.distill_distance_weight:
        terms.append(Objective("distill_distance", settings.distill_distance_weight,
                               distillation.distance_term(teacher_metric or settings.metric)))
    return terms


def evaluate(objectives: list[Objective], outputs: dict[str, tf.Tensor],
             labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
    """`(total loss, (B,) weighted per-sample total, {term name: its (B,) per-sample values})`.

    A weight of 1 is not multiplied in, so the triplet-only objective computes exactly the original's
    `mean(per_anchor)`.
    """
    if not objectives:
        raise ValueError("the objective has no terms")
    total, per_sample, values = None, None, {}
    for term in objectives:
        values[term.name] = term_values = term.fn(outputs, labels)
        mean = tf.reduce_mean(term_values)
        if term.weight != 1:
            mean, term_values = term.weight * mean, term.weight * term_values
        total = mean if total is None else total + mean
        per_sample = term_values if per_sample is None else per_sample + term_values
    return total, per_sample, values
