"""The metric-learning losses (issue 23): values worked out by hand on tiny batches, agreement with
straightforward numpy loops written from the papers' equations, finite gradients at coincident embeddings,
and the registry's defaults (the papers') equal to the settings'."""

import inspect
import math

import numpy as np
import pytest
import tensorflow as tf

from trinet.config.registries import METRIC_LOSSES, metric_loss
from trinet.config.settings import TrainSettings
from trinet.losses import metric_learning, proxies

rng = np.random.default_rng(3)
#: A random batch: 3 classes x 3 samples and 2 singletons (anchors without positive), 5-d.
EMB = rng.normal(size=(11, 5)).astype(np.float32)
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4], np.int32)
CLASSES = 6  # one class (5) without a sample in the batch
PROXIES = rng.normal(size=(CLASSES, 5)).astype(np.float32)


def _unit(x):
    return x / np.sqrt(np.sum(x ** 2, axis=-1, keepdims=True) + 1e-12)


def _softplus(x):
    return math.log1p(math.exp(x)) if x < 30 else x + math.log1p(math.exp(-x))


def _lse(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _call(name, emb=EMB, labels=LABELS, proxy=PROXIES, **parameters):
    fn = METRIC_LOSSES.resolve(name)
    args = (tf.constant(emb), tf.constant(labels))
    if metric_loss(name).proxies:
        args += (tf.constant(proxy),)
    return fn(*args, **parameters).numpy().astype(np.float64)


# -- numpy references, one loop per sum of the papers' equations --------------------------------------------
def ref_contrastive(emb, labels, pos_margin=0.0, neg_margin=1.0):
    u = _unit(emb.astype(np.float64))
    pos, neg = [], []
    for i in range(len(u)):
        for j in range(len(u)):
            if i == j:
                continue
            d = math.sqrt(np.sum((u[i] - u[j]) ** 2) + 1e-12)
            if labels[i] == labels[j]:
                pos.append(max(d - pos_margin, 0.0))
            else:
                neg.append(max(neg_margin - d, 0.0))
    mean_nonzero = [sum(v) / max(1, sum(x > 0 for x in v)) for v in (pos, neg)]
    return sum(mean_nonzero)


def ref_multi_similarity(emb, labels, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1):
    u = _unit(emb.astype(np.float64))
    s = u @ u.T
    out = []
    for i in range(len(u)):
        pos = [s[i, j] for j in range(len(u)) if j != i and labels[j] == labels[i]]
        neg = [s[i, j] for j in range(len(u)) if labels[j] != labels[i]]
        if not pos or not neg:
            out.append(0.0)
            continue
        kept_neg = [x for x in neg if x + epsilon > min(pos)]
        kept_pos = [x for x in pos if x - epsilon < max(neg)]
        loss = 0.0
        if kept_pos:
            loss += math.log(1 + sum(math.exp(-alpha * (x - base)) for x in kept_pos)) / alpha
        if kept_neg:
            loss += math.log(1 + sum(math.exp(beta * (x - base)) for x in kept_neg)) / beta
        out.append(loss)
    return np.array(out)


def ref_lifted_structure(emb, labels, margin=1.0):
    u = _unit(emb.astype(np.float64))
    n = len(u)
    d = np.sqrt(np.sum((u[:, None] - u[None]) ** 2, axis=-1) + 1e-12)
    total, pairs = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            if labels[i] != labels[j]:
                continue
            pairs += 1
            terms = [margin - d[i, k] for k in range(n) if labels[k] != labels[i]]
            terms += [margin - d[j, k] for k in range(n) if labels[k] != labels[j]]
            total += max(_lse(terms) + d[i, j], 0.0) ** 2
    return total / (2 * pairs)


def ref_supcon(emb, labels, temperature=0.1):
    u = _unit(emb.astype(np.float64))
    z = u @ u.T / temperature
    out = []
    for i in range(len(u)):
        positives = [p for p in range(len(u)) if p != i and labels[p] == labels[i]]
        if not positives:
            out.append(0.0)
            continue
        denominator = _lse([z[i, a] for a in range(len(u)) if a != i])
        out.append(-sum(z[i, p] - denominator for p in positives) / len(positives))
    return np.array(out)


def ref_circle_pair(emb, labels, margin=0.4, gamma=80.0):
    u = _unit(emb.astype(np.float64))
    s = u @ u.T
    out = []
    for i in range(len(u)):
        sp = [s[i, j] for j in range(len(u)) if j != i and labels[j] == labels[i]]
        sn = [s[i, j] for j in range(len(u)) if labels[j] != labels[i]]
        if not sp or not sn:
            out.append(0.0)
            continue
        lp = [-gamma * max(1 + margin - x, 0) * (x - (1 - margin)) for x in sp]
        ln = [gamma * max(x + margin, 0) * (x - margin) for x in sn]
        out.append(_softplus(_lse(lp) + _lse(ln)))
    return np.array(out)


def ref_proxy_nca(emb, labels, proxy, scale=3.0):
    x, p = scale * _unit(emb.astype(np.float64)), scale * _unit(proxy.astype(np.float64))
    out = []
    for i in range(len(x)):
        d = [np.sum((x[i] - p[c]) ** 2) for c in range(len(p))]
        out.append(-math.log(math.exp(-d[labels[i]]) /
                             sum(math.exp(-d[c]) for c in range(len(p)) if c != labels[i])))
    return np.array(out)


def ref_proxy_anchor(emb, labels, proxy, alpha=32.0, delta=0.1):
    s = _unit(emb.astype(np.float64)) @ _unit(proxy.astype(np.float64)).T
    with_positives = [c for c in range(len(proxy)) if c in set(labels.tolist())]
    pos = sum(math.log(1 + sum(math.exp(-alpha * (s[i, c] - delta)) for i in range(len(s)) if labels[i] == c))
              for c in with_positives) / len(with_positives)
    neg = sum(math.log(1 + sum(math.exp(alpha * (s[i, c] + delta)) for i in range(len(s)) if labels[i] != c))
              for c in range(len(proxy))) / len(proxy)
    return pos + neg


#: name -> (reference, whether it gives per-sample values (else the batch's loss), parameters to try)
REFERENCES = {
    "contrastive": (ref_contrastive, False, dict(pos_margin=0.2, neg_margin=1.3)),
    "multi_similarity": (ref_multi_similarity, True, dict(alpha=3.0, beta=20.0, base=0.3, epsilon=0.2)),
    "lifted_structure": (ref_lifted_structure, False, dict(margin=0.5)),
    "supcon": (ref_supcon, True, dict(temperature=0.5)),
    "circle_pair": (ref_circle_pair, True, dict(margin=0.25, gamma=256.0)),
    "proxy_nca": (ref_proxy_nca, True, dict(scale=1.5)),
    "proxy_anchor": (ref_proxy_anchor, False, dict(alpha=16.0, delta=0.2)),
}


def test_every_registered_loss_has_a_reference_here():
    assert sorted(REFERENCES) == sorted(METRIC_LOSSES)


@pytest.mark.parametrize("name", sorted(METRIC_LOSSES))
@pytest.mark.parametrize("defaults", [True, False], ids=["defaults", "other_parameters"])
def test_losses_agree_with_the_numpy_reference(name, defaults):
    reference, per_sample, parameters = REFERENCES[name]
    parameters = {} if defaults else parameters
    extra = (PROXIES,) if metric_loss(name).proxies else ()
    values = _call(name, **parameters)
    assert values.shape == (len(EMB),)
    expected = reference(EMB, LABELS, *extra, **parameters)
    if per_sample:
        np.testing.assert_allclose(values, expected, rtol=2e-5, atol=1e-6)
    else:
        assert values.mean() == pytest.approx(expected, rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("name", sorted(METRIC_LOSSES))
def test_defaults_are_the_settings_and_the_papers(name):
    """The functions' keyword defaults are TrainSettings' defaults (one home for the papers' values)."""
    entry = metric_loss(name)
    signature = inspect.signature(METRIC_LOSSES.resolve(name))
    defaults = TrainSettings()
    assert hasattr(defaults, entry.weight) and getattr(defaults, entry.weight) == 0
    for field, keyword in entry.parameters:
        assert signature.parameters[keyword].default == getattr(defaults, field), field


PAPERS = {("ms_alpha", 2.0), ("ms_beta", 50.0), ("ms_base", 0.5), ("ms_epsilon", 0.1), ("lifted_margin", 1.0),
          ("supcon_temperature", 0.1), ("circle_pair_margin", 0.4), ("circle_pair_gamma", 80.0),
          ("proxy_anchor_alpha", 32.0), ("proxy_anchor_delta", 0.1), ("proxy_lr_multiplier", 100.0),
          ("contrastive_pos_margin", 0.0), ("contrastive_neg_margin", 1.0)}


def test_the_defaults_are_the_papers():
    defaults = TrainSettings()
    assert {(name, getattr(defaults, name)) for name, _ in PAPERS} == PAPERS


def test_contrastive_by_hand():
    """Class 0: two coincident unit vectors (d = sqrt(1e-12) = 1e-6); class 1: (0, 1) and (-1, 0), at
    sqrt(2). Every negative pair is at sqrt(2) or 2, beyond the margin 1: no negative loss. The four ordered
    positive pairs all cost > 0: (2 sqrt(2) + 2e-6) / 4."""
    emb = np.array([[1, 0], [1, 0], [0, 1], [-1, 0]], np.float32)
    values = _call("contrastive", emb, np.array([0, 0, 1, 1], np.int32))
    assert values.mean() == pytest.approx((2 * math.sqrt(2) + 2e-6) / 4, abs=1e-6)
    np.testing.assert_allclose(values, [4e-6 / 4, 4e-6 / 4, math.sqrt(2), math.sqrt(2)], atol=1e-6)


def test_supcon_by_hand():
    """Two coincident vectors of class 0 and one orthogonal one of class 1, tau = 0.1: each of the first two
    has one positive at logit 10 against the negative at 0: -log(e^10 / (e^10 + 1)) = log(1 + e^-10); the
    third has no positive: 0. (float32 rounds 1 + e^-10 to 6e-8, 1.3e-3 of e^-10.)"""
    emb = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    values = _call("supcon", emb, np.array([0, 0, 1], np.int32))
    np.testing.assert_allclose(values, [math.log1p(math.exp(-10))] * 2 + [0], rtol=1.5e-3, atol=1e-12)


def test_multi_similarity_mining_by_hand():
    """Anchor 0 at angle 0; its positive at 90 degrees (s = 0); negatives at 60 degrees (s = 0.5, kept: 0.5 +
    0.1 > 0) and 180 (s = -1, not kept). The positive is kept (0 - 0.1 < 0.5). Loss: 1/2 log(1 + e^(-2 (0 -
    0.5))) + 1/50 log(1 + e^(50 (0.5 - 0.5)))."""
    a = math.radians(60)
    emb = np.array([[1, 0], [0, 1], [math.cos(a), math.sin(a)], [-1, 0]], np.float32)
    values = _call("multi_similarity", emb, np.array([0, 0, 1, 2], np.int32))
    assert values[0] == pytest.approx(math.log1p(math.e) / 2 + math.log(2) / 50, rel=1e-5)


def test_proxy_nca_by_hand():
    """One embedding on its proxy, the other proxy opposite, scale 1: d_own = 0 (2 (1 - 1)), d_other = 4;
    -log(e^0 / e^-4) = -4."""
    values = _call("proxy_nca", np.array([[1, 0]], np.float32), np.array([0], np.int32),
                   np.array([[2, 0], [-3, 0]], np.float32), scale=1.0)
    assert values[0] == pytest.approx(-4.0, abs=1e-5)


def test_proxy_anchor_shares_sum_to_the_loss_and_give_its_gradient():
    """The per-sample split is the loss (its mean) and its gradient is the loss's: compared with the
    gradient of the two sums written directly."""
    emb, proxy = tf.Variable(EMB), tf.Variable(PROXIES)
    labels = tf.constant(LABELS)
    with tf.GradientTape(persistent=True) as tape:
        split = tf.reduce_mean(proxies.proxy_anchor(emb, labels, proxy))
        sims = metric_learning.cosine_similarities(emb, proxy)
        own = tf.one_hot(labels, CLASSES) > 0
        pos = tf.math.log1p(tf.reduce_sum(tf.where(own, tf.exp(-32 * (sims - 0.1)), 0.0), axis=0))
        neg = tf.math.log1p(tf.reduce_sum(tf.where(own, 0.0, tf.exp(32 * (sims + 0.1))), axis=0))
        present = tf.reduce_any(own, axis=0)
        direct = (tf.reduce_sum(tf.where(present, pos, 0.0)) / tf.reduce_sum(tf.cast(present, tf.float32))
                  + tf.reduce_mean(neg))
    assert float(split) == pytest.approx(float(direct), rel=1e-5)
    for variable in (emb, proxy):
        np.testing.assert_allclose(tape.gradient(split, variable), tape.gradient(direct, variable), rtol=1e-3,
                                   atol=1e-6)


@pytest.mark.parametrize("name", sorted(METRIC_LOSSES))
@pytest.mark.parametrize("value", [0.0, 0.7], ids=["zeros", "equal"])
def test_gradients_are_finite_at_coincident_embeddings(name, value):
    """All embeddings equal (and the proxies on them): finite losses and gradients."""
    emb = tf.Variable(np.full((6, 4), value, np.float32))
    proxy = tf.Variable(np.full((3, 4), value, np.float32))
    labels = tf.constant([0, 0, 1, 1, 2, 2])
    fn = METRIC_LOSSES.resolve(name)
    with tf.GradientTape() as tape:
        args = (emb, labels, proxy) if metric_loss(name).proxies else (emb, labels)
        loss = tf.reduce_mean(fn(*args))
    grads = tape.gradient(loss, [emb, proxy])
    assert np.isfinite(float(loss))
    for grad in grads:
        if grad is not None:
            assert np.all(np.isfinite(tf.convert_to_tensor(grad).numpy()))


@pytest.mark.parametrize("name", sorted(METRIC_LOSSES))
def test_a_batch_of_one_class_is_finite(name):
    """No negatives at all (and, for the pair losses, nothing to contrast): finite values."""
    values = _call(name, EMB[:3], np.zeros(3, np.int32))
    assert np.all(np.isfinite(values))


def test_masked_logsumexp_of_nothing_is_zero_with_a_finite_gradient():
    x = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
    mask = tf.constant([[True, False], [False, False]])
    with tf.GradientTape() as tape:
        values, found = metric_learning.masked_logsumexp(x, mask)
        total = tf.reduce_sum(values)
    np.testing.assert_allclose(values, [1.0, 0.0])
    assert found.numpy().tolist() == [True, False]
    np.testing.assert_allclose(tape.gradient(total, x), [[1.0, 0.0], [0.0, 0.0]])
