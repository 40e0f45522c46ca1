"""benchmarks/bench_adaptation.py's pieces: its runs' flags are ones train.py accepts, and the generated
embeddings of the scale measurement. The harness itself trains networks (minutes);
`python benchmarks/bench_adaptation.py --quick` is its smoke test."""

import os
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import bench_adaptation  # noqa: E402
import bench_recipe  # noqa: E402


@pytest.mark.parametrize("memory", ["1", "0"])
def test_the_pseudo_label_runs_flags_are_accepted_by_train_py(tmp_path, memory):
    from trinet.cli.train import build_parser, resolve_settings

    (tmp_path / "u.csv").write_text("0001,a.jpg\n")
    flags = bench_adaptation.pseudo_flags(600, 100, memory=memory)
    argv = ["--experiment_root", str(tmp_path / "exp"), "--unlabeled_set", str(tmp_path / "u.csv"),
            "--unlabeled_image_root", str(tmp_path), *bench_recipe.as_argv(flags), "--seed", "0"]
    s = resolve_settings(build_parser(), argv)
    assert s.pseudo_labels and s.recluster_frequency == 100 and s.train_iterations == 600
    assert s.memory_loss_weight == float(memory) and (s.cluster_k1, s.cluster_eps) == (10, 0.5)


def test_generated_embeddings_are_unit_vectors_in_clusters():
    x = bench_adaptation.generated_embeddings(200, dim=64, per_cluster=10, seed=1)
    assert x.shape == (200, 64) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-5)
    same = x[0] @ x[20]  # rows 0 and 20 share a centre (i % 20), rows 0 and 1 do not
    assert same > 0.5 > abs(x[0] @ x[1])


def test_pairs_must_be_two_different_worlds():
    with pytest.raises(SystemExit):
        bench_adaptation.main(["--pairs", "1:1", "--no_scale"])
    with pytest.raises(SystemExit):
        bench_adaptation.main(["--pairs", "a:b", "--no_scale"])
