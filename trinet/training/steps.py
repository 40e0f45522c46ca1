"""The training steps: one compiled update of the model from a batch, on one device or on the replicas of a
`tf.distribute` strategy, and the pieces every step shares (the update of the optimizers and of the centres,
the float32 outputs, the monitoring), which mutual learning's step uses too (`trinet.training.mutual`)."""

from __future__ import annotations

import keras
import tensorflow as tf

from trinet.losses.monitoring import active_fraction, batch_stats
from trinet.training.objectives import evaluate as evaluate_objectives


def apply_updates(updates, grads, centers, center_scale: float, loss_scale=None,
                  all_reduce=None) -> tf.Tensor:
    """Apply `grads` (of the variables of `updates`, then of `centers`) with each `(optimizer, variables)`
    pair; the centres take a plain SGD step. With a loss-scale optimizer (float16), a step whose gradients
    are not finite is skipped (and the centres too); its iteration still counts, so the learning-rate
    schedule does not shift. `all_reduce`: sums the centres' gradient over replicas. Returns whether the
    step was skipped."""
    skipped = tf.constant(False)
    if loss_scale is not None:
        scale = tf.cast(tf.convert_to_tensor(loss_scale.dynamic_scale), tf.float32)
        before = tf.convert_to_tensor(loss_scale.iterations)
    start = 0
    for optimizer, group in updates:
        optimizer.apply_gradients(zip(grads[start:start + len(group)], group))
        start += len(group)
    if loss_scale is not None:
        skipped = tf.equal(tf.convert_to_tensor(loss_scale.iterations), before)
        loss_scale.iterations.assign_add(tf.cast(skipped, loss_scale.iterations.dtype))
    if centers is not None:
        grad = tf.convert_to_tensor(grads[-1])  # gathered: sparse
        if all_reduce is not None:
            grad = all_reduce(grad)
        if loss_scale is not None:
            grad = tf.where(skipped, tf.zeros_like(grad), grad / scale)
        centers.assign_sub(center_scale * grad)
    return skipped


def float32_outputs(outputs: dict) -> dict:
    """The model's outputs in float32 (what the losses see under mixed precision)."""
    return {name: tf.cast(t, tf.float32) for name, t in outputs.items()}


def pool_clips(outputs: dict, frames: int) -> dict:
    """Video re-id's temporal pooling before the losses: each output `(C*T, ...)` of C clips of T = `frames`
    consecutive images becomes `(C, ...)`, the mean over each clip's frames (`--sampler pk_clips`,
    `--temporal_pooling mean`). `frames` 1 returns `outputs` as they are."""
    if frames == 1:
        return outputs
    pooled = {}
    for name, t in outputs.items():
        shape = tf.concat([[-1, frames], tf.shape(t)[1:]], axis=0)
        pooled[name] = tf.reduce_mean(tf.reshape(t, shape), axis=1)
    return pooled


def step_monitoring(stats: dict, loss, per_sample, outputs: dict, terms: dict, skipped) -> dict:
    """`stats` (of `batch_stats`) with what the training loop logs of a step: the loss, the per-sample losses
    (B,), the embeddings (B, D) and their norms (B,), the active fraction, each term's mean and `skipped`."""
    stats.update(loss=loss, per_sample=per_sample, emb=outputs["embedding"],
                 norms=tf.norm(outputs["raw"], axis=1),
                 active=active_fraction(terms.get("triplet", per_sample)), skipped=skipped)
    stats.update({f"loss_{name}": tf.reduce_mean(values) for name, values in terms.items()})
    return stats


def make_train_step(model: keras.Model, updates, objectives, distances, k: int, centers=None,
                    center_scale: float = 0.0, jit_compile: bool = False, loss_scale=None, teacher=None,
                    clip_length: int = 1, after_update=None):
    """A compiled `(images (B,H,W,3), labels (B,)) -> dict of tensors` training step (`distances`: the
    `(B, D) -> (B, B)` distances the losses see, `trinet.losses.pairwise.batch_distances`) that applies, for
    each `(optimizer, variables)` of `updates`, the gradients of those variables, and updates `centers`
    (if any) by plain SGD on the unweighted centre loss (`center_scale` = centre learning rate / centre
    loss weight), as the Bag of Tricks. `jit_compile`: the forward and backward passes and the updates
    are compiled with XLA (the monitoring, of dynamic shapes, is not). `loss_scale`: the
    LossScaleOptimizer of float16 training (the loss is scaled for the gradients). `teacher`: `images ->
    dict` of constant outputs added to the model's (distillation). `clip_length`: T > 1 for batches of
    clips (`--sampler pk_clips`): the images are `(C*T, H, W, 3)` with `(C*T,)` labels, and the losses see
    the C clips' pooled outputs (`pool_clips`) with every T-th label. `after_update`: `(outputs, labels) ->
    None`, run after the gradients are applied (the momentum update of the cluster memory,
    `trinet.training.trainer.Trainer.memory_update`)."""
    variables = [v for _, group in updates for v in group]
    watched = variables + ([centers] if centers is not None else [])

    def learn(images, labels):
        with tf.GradientTape() as tape:
            outputs = pool_clips(float32_outputs(model(images, training=True)), clip_length)
            if teacher is not None:
                outputs.update(teacher(images))
            outputs["dists"] = distances(outputs["metric"])
            loss, per_sample, terms = evaluate_objectives(objectives, outputs, labels)
            scaled = loss if loss_scale is None else loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, watched)
        skipped = apply_updates(updates, grads, centers, center_scale, loss_scale)
        if after_update is not None:
            after_update(outputs, labels)
        return outputs, loss, per_sample, terms, skipped

    learn_step = tf.function(learn, jit_compile=True) if jit_compile else learn

    @tf.function
    def step(images, labels):
        labels = labels[::clip_length]
        outputs, loss, per_sample, terms, skipped = learn_step(images, labels)
        stats = batch_stats(outputs["dists"], labels, k)
        return step_monitoring(stats, loss, per_sample, outputs, terms, skipped)

    return step


def make_replicated_step(strategy: tf.distribute.Strategy, model: keras.Model, updates, objectives,
                         distances, k: int, batch_size: int, centers=None, center_scale: float = 0.0,
                         cross_replica_mining: bool = False, loss_scale=None, teacher=None,
                         clip_length: int = 1):
    """The training step of `make_train_step` run by each replica of `strategy` on its share of the global
    batch: `batch_size / replicas` consecutive images (whole identities;
    `trinet.models.distribute.replica_share`); with `clip_length` T > 1, `batch_size` counts clips of T
    images, and each replica pools its own (`pool_clips`).

    Each replica's loss is its share of the global mean (its per-sample losses summed, over the global
    batch size), so that the gradients the optimizer sums over replicas are those of the global batch.
    With `cross_replica_mining` the outputs of all replicas are all-gathered (differentiably) and each
    replica evaluates the objectives on the global batch, keeping its own samples' losses: the step then
    computes what one device computes. Without it, each replica's objectives see its own images only. The
    monitoring is always of the global batch. `stop` (a float, > 0 on a worker that was interrupted) is
    summed over the replicas into the output `stop`, so that every worker of a cluster stops after the
    same step. Returns one replica's values (they are the same on all).
    """
    variables = [v for _, group in updates for v in group]
    watched = variables + ([centers] if centers is not None else [])
    replicas = strategy.num_replicas_in_sync
    share = batch_size // replicas

    def replica_step(images, labels, stop):
        ctx = tf.distribute.get_replica_context()
        first = ctx.replica_id_in_sync_group * share
        labels = labels[::clip_length]
        own_images = tf.nest.map_structure(lambda t: t[first * clip_length:(first + share) * clip_length],
                                           images)
        own_labels = labels[first:first + share]

        def gather(t):
            return ctx.all_gather(t, axis=0)

        with tf.GradientTape() as tape:
            outputs = pool_clips(float32_outputs(model(own_images, training=True)), clip_length)
            if teacher is not None:
                outputs.update(teacher(own_images))
            if cross_replica_mining:
                outputs = {name: gather(t) for name, t in outputs.items()}
                outputs["dists"] = distances(outputs["metric"])
                _, per_sample, terms = evaluate_objectives(objectives, outputs, labels)
                own_loss = tf.reduce_sum(per_sample[first:first + share]) / batch_size
            else:
                outputs["dists"] = distances(outputs["metric"])
                own_total, per_sample, terms = evaluate_objectives(objectives, outputs, own_labels)
                own_loss = own_total / replicas
            scaled = own_loss if loss_scale is None else loss_scale.scale_loss(own_loss)
        grads = tape.gradient(scaled, watched)
        skipped = apply_updates(updates, grads, centers, center_scale, loss_scale,
                                all_reduce=lambda g: ctx.all_reduce(tf.distribute.ReduceOp.SUM, g))
        if not cross_replica_mining:  # the monitoring sees the global batch
            outputs = {name: gather(tf.stop_gradient(t)) for name, t in outputs.items() if name != "dists"}
            outputs["dists"] = distances(outputs["metric"])
            per_sample, terms = gather(per_sample), {name: gather(v) for name, v in terms.items()}
        loss = ctx.all_reduce(tf.distribute.ReduceOp.SUM, own_loss)
        stats = batch_stats(outputs["dists"], labels, k)
        # > 0: a worker was interrupted (the identity places the input on this replica's device)
        stats["stop"] = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(stop))
        return step_monitoring(stats, loss, per_sample, outputs, terms, skipped)

    @tf.function
    def step(images, labels, stop=0.0):
        results = strategy.run(replica_step, args=(images, labels, tf.convert_to_tensor(stop, tf.float32)))
        return {name: strategy.experimental_local_results(value)[0] for name, value in results.items()}

    return step
