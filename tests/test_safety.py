"""Safe loading: nothing reads pickles or evaluates strings from files; models load in Keras' safe mode."""

import ast
import os

import numpy as np
import pytest

from conftest import REPO

SOURCES = [os.path.join(folder, name) for top in ("trinet", "data")
           for folder, _, names in os.walk(os.path.join(REPO, top)) for name in names if name.endswith(".py")]
SOURCES += [os.path.join(REPO, name) for name in ("train.py", "embed.py", "evaluate.py")]


def calls(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            yield owner, name, {k.arg: k.value for k in node.keywords}


def test_sources_were_found():
    assert len(SOURCES) > 20


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: os.path.relpath(p, REPO))
def test_no_pickle_eval_or_unsafe_loading(path):
    source = open(path, encoding="utf-8").read()
    assert "import pickle" not in source and "cPickle" not in source and "dill" not in source
    for owner, name, keywords in calls(path):
        assert owner or name not in ("eval", "exec", "compile", "__import__"), name
        if name in ("load", "load_model", "loadtxt"):
            if "allow_pickle" in keywords:
                value = keywords["allow_pickle"]
                assert isinstance(value, ast.Constant) and value.value is False
            if "safe_mode" in keywords:
                assert isinstance(keywords["safe_mode"], ast.Constant) and keywords["safe_mode"].value is True
        if name == "load_model" and owner.startswith("keras"):
            assert "safe_mode" in keywords, f"{path}: {owner}.load_model without an explicit safe_mode=True"


def test_a_pickled_npy_file_is_refused(tmp_path):
    path = tmp_path / "detailed_losses.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        np.load(path, mmap_mode="r+")  # how DetailedLogs reopens its files on --resume
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(path)
