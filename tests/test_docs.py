"""The README keeps its promises: the flag reference matches the parsers, the two commands exist."""

import os
import re

from conftest import REPO
from trinet.cli import docs


def readme():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_flag_reference_matches_the_parsers():
    assert docs.current_block(readme()) == docs.flag_reference(), "run: python -m trinet.cli.docs"


def test_every_flag_of_every_script_is_documented():
    block = docs.current_block(readme())
    for name, parser in docs._parsers():
        section = block.split(f"#### {name}")[1].split("####")[0]
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert f"`{max(action.option_strings, key=len)}" in section, (name, action.dest)


def test_original_flags_keep_their_names():
    flags = {name: {s for a in p._actions for s in a.option_strings} for name, p in docs._parsers()}
    original = {
        "train.py": "experiment_root train_set image_root resume model_name head_name embedding_dim "
                    "initial_checkpoint batch_p batch_k net_input_height net_input_width pre_crop_height "
                    "pre_crop_width loading_threads margin metric loss learning_rate train_iterations "
                    "decay_start_iteration checkpoint_frequency flip_augment crop_augment detailed_logs",
        "embed.py": "experiment_root dataset image_root checkpoint loading_threads batch_size filename "
                    "flip_augment crop_augment aggregator quiet",
        "evaluate.py": "excluder query_dataset query_embeddings gallery_dataset gallery_embeddings metric "
                       "filename batch_size use_market_ap",
    }
    for script, names in original.items():
        missing = [n for n in names.split() if f"--{n}" not in flags[script]]
        assert not missing, (script, missing)


def test_the_two_commands_and_ci():
    text = readme()
    assert "make demo" in text and "make test" in text
    makefile = open(os.path.join(REPO, "Makefile")).read()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert "make test" in ci and "make lint" in ci
