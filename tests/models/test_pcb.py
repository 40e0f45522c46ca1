"""PCB (--head_name pcb): stripes by hand, the head's parts and classifiers, training and the errors."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import train
from trinet.models.builder import ModelSpec, build_model, embedding_model
from trinet.models.layers import StripePooling
from trinet.training.objectives import identification_term


def test_stripes_average_their_rows_as_evenly_as_the_height_allows():
    # 7 rows into 3 stripes: rows 0-1, 2-3, 4-6 (floor(i * 7 / 3) = 0, 2, 4, 7)
    rows = np.arange(7, dtype=np.float32)
    fmap = np.broadcast_to(rows[None, :, None, None], (2, 7, 3, 4)).copy()
    fmap[1] *= 10.0
    parts = [p.numpy() for p in StripePooling(3)(tf.constant(fmap))]
    assert len(parts) == 3 and parts[0].shape == (2, 4)
    np.testing.assert_allclose([p[0, 0] for p in parts], [0.5, 2.5, 5.0])
    np.testing.assert_allclose([p[1, 0] for p in parts], [5.0, 25.0, 50.0])
    # one stripe is global average pooling
    np.testing.assert_allclose(StripePooling(1)(tf.constant(fmap))[0], fmap.mean(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("global_branch, parts", [(False, 4), (True, 5)])
def test_the_pcb_model_has_a_reduction_and_a_classifier_per_part(global_branch, parts):
    spec = ModelSpec("lunet", "pcb", 8, num_classes=5, num_stripes=4, pcb_global_branch=global_branch)
    model = build_model(spec)
    images = np.random.default_rng(0).uniform(0, 255, (3, 64, 32, 3)).astype(np.float32)
    out = model(images, training=False)
    assert out["embedding"].shape == (3, parts * 8) and out["logits"].shape == (3, parts, 5)
    names = {layer.name for layer in model.layers}
    assert {f"head_classifier_{i}" for i in range(parts)} <= names
    assert ("head_pcb_reduce_global" in names) == global_branch
    inference = embedding_model(model)
    assert not any("classifier" in v.path for v in inference.weights)
    np.testing.assert_allclose(inference(images, training=False), out["embedding"], rtol=1e-6)


def test_the_identification_loss_of_parts_is_the_mean_of_each_parts_loss():
    logits = tf.constant(np.random.default_rng(1).normal(size=(4, 3, 6)).astype(np.float32))
    labels = tf.constant([0, 5, 2, 2])
    term = identification_term(0.1)
    per_part = [term({"logits": logits[:, p]}, labels).numpy() for p in range(3)]
    np.testing.assert_allclose(term({"logits": logits}, labels), np.mean(per_part, axis=0), rtol=1e-6)


def test_pcb_trains_with_identification_and_triplet_losses(tmp_path, image_set):
    assert train(tmp_path / "e", image_set, "--head_name", "pcb", "--num_stripes", "2", "--pcb_global_branch",
                 "--id_loss_weight", "1", "--train_iterations", "2") == 0
    assert "1 x triplet + 1 x id" in open(tmp_path / "e" / "train.log").read()


def test_more_stripes_than_rows_or_pcb_flags_elsewhere_are_refused(tmp_path, image_set, capsys):
    # TINY LuNet at 32x16: the feature map has 2 rows
    assert train(tmp_path / "a", image_set, "--head_name", "pcb", "--num_stripes", "3") == 2
    assert "--num_stripes 3 is larger than the height of the feature map (2 rows" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit) as refused:  # a settings check: argparse's exit at parse time
        train(tmp_path / "b", image_set, "--pcb_global_branch")
    assert refused.value.code == 2
    assert "--pcb_global_branch applies to --head_name pcb only" in capsys.readouterr().err
