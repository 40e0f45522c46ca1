"""Deep mutual learning (`--mutual_models N`, Zhang et al. 2018, as AlignedReID trains it): N networks
trained together on the same batches, each with its own objective plus two terms that pull it towards the
others:
    mutual_logits: the mean over the other networks of KL(p_other || p_self) of the class probabilities
        (needs the identification loss);
    mutual_distance: the mean over the other networks of the matching of the batch distance matrices
        (`trinet.training.distillation.distance_matching`).
The other networks' outputs are constants in each network's terms (each learns from the others, as in DML).
Network 0 is the run's model (checkpoints' `model` group, model.keras, validation); network i > 0 is saved
in the groups `member<i>_model`, `member<i>_optimizer`, ... and exported as `model_member<i>.keras`.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from trinet.losses.monitoring import batch_stats
from trinet.training.distillation import distance_matching, kl_divergence
from trinet.training.objectives import Objective, evaluate as evaluate_objectives
from trinet.training.steps import apply_updates, float32_outputs, step_monitoring

#: The name of network i's checkpoint groups and model file (i > 0; network 0 keeps the plain names).
MEMBER_PREFIX = "member{}_"


def mutual_terms(outputs: list[dict[str, tf.Tensor]], index: int, logits_weight: float,
                 distance_weight: float) -> dict[str, tf.Tensor]:
    """`{term name: (B,) per-sample values}` of network `index` against the others (their outputs held
    constant); a term of weight 0 is left out."""
    others = [o for j, o in enumerate(outputs) if j != index]
    own = outputs[index]
    terms = {}
    if logits_weight:
        terms["mutual_logits"] = tf.add_n([kl_divergence(own["logits"], tf.stop_gradient(o["logits"]), 1.0)
                                           for o in others]) / len(others)
    if distance_weight:
        terms["mutual_distance"] = tf.add_n([distance_matching(own["dists"], tf.stop_gradient(o["dists"]))
                                             for o in others]) / len(others)
    return terms


def _needs_all_networks(outputs, labels):
    raise TypeError("a mutual term is a function of every network's outputs: see mutual_terms")


class MutualTrainer:
    """N `trinet.training.trainer.Trainer`s trained together; looks like the first one to the training
    loop."""

    def __init__(self, members: list, logits_weight: float, distance_weight: float):
        self.members = members
        self.logits_weight, self.distance_weight = logits_weight, distance_weight
        first = members[0]
        self.s, self.model, self.inference, self.schedule = (first.s, first.model, first.inference,
                                                             first.schedule)
        self.num_classes, self.strategy, self.loss_scale, self.teacher = first.num_classes, None, None, None
        self.num_cameras = first.num_cameras  # 0: --camera_embedding is refused with --mutual_models
        #: network 0's terms and the mutual ones, as the log line lists them (the mutual terms need every
        #: network's outputs: `make_mutual_step` computes them with `mutual_terms`)
        self.objectives = first.objectives + [
            Objective(name, weight, _needs_all_networks)
            for name, weight in (("mutual_logits", logits_weight), ("mutual_distance", distance_weight))
            if weight]
        self._steps: dict[str, Any] = {}

    def groups(self) -> dict[str, list]:
        """Every network's variables: network 0's groups as one run's, network i's prefixed."""
        groups = dict(self.members[0].groups())
        for i, member in enumerate(self.members[1:], 1):
            groups.update({MEMBER_PREFIX.format(i) + name: variables
                           for name, variables in member.groups().items()})
        return groups

    def step(self, iteration: int):
        """The compiled step of `iteration` for all networks (each in its freeze phase)."""
        s = self.s
        phase = "new" if iteration < s.freeze_backbone_iterations else "all"
        if phase not in self._steps:
            self._steps[phase] = make_mutual_step(self.members, phase, max(1, s.batch_k - 1),
                                                  self.logits_weight, self.distance_weight)
        return self._steps[phase]

    def extra_models(self) -> dict[str, keras.Model]:
        """`{file name: training model}` of networks 1 to N - 1 (exported as `model_member<i>.keras`)."""
        return {f"model_{MEMBER_PREFIX.format(i)[:-1]}.keras": member.model
                for i, member in enumerate(self.members[1:], 1)}


def make_mutual_step(members: list, phase: str, k: int, logits_weight: float,
                     distance_weight: float):
    """A compiled `(images, labels) -> dict` step of deep mutual learning: every network's own objective
    plus its mutual terms, each network's gradients applied by its own optimizers (and centres). The
    monitoring is network 0's; `loss_member<i>` is network i's total loss."""
    plans = []
    for member in members:
        s = member.s
        updates = member.updates(phase)
        watched = [v for _, group in updates for v in group]
        if member.centers is not None:
            watched.append(member.centers)
        center_scale = s.center_learning_rate / s.center_loss_weight if s.center_loss_weight else 0.0
        plans.append((member, updates, watched, center_scale))

    @tf.function
    def step(images, labels):
        with tf.GradientTape(persistent=True) as tape:
            outputs = []
            for member, *_ in plans:
                out = float32_outputs(member.model(images, training=True))
                out["dists"] = member.distances(out["metric"])
                outputs.append(out)
            results = []
            for i, (member, *_) in enumerate(plans):
                loss, per_sample, terms = evaluate_objectives(member.objectives, outputs[i], labels)
                for name, values in mutual_terms(outputs, i, logits_weight, distance_weight).items():
                    weight = logits_weight if name == "mutual_logits" else distance_weight
                    loss, per_sample = loss + weight * tf.reduce_mean(values), per_sample + weight * values
                    terms[name] = values
                results.append((loss, per_sample, terms))
        for (member, updates, watched, center_scale), (loss, _, _) in zip(plans, results):
            apply_updates(updates, tape.gradient(loss, watched), member.centers, center_scale)
        del tape
        loss, per_sample, terms = results[0]
        stats = step_monitoring(batch_stats(outputs[0]["dists"], labels, k), loss, per_sample, outputs[0],
                                terms, tf.constant(False))
        stats.update({f"loss_member{i}": result[0] for i, result in enumerate(results[1:], 1)})
        return stats

    return step
