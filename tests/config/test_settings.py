"""TrainSettings: what args.json holds, read back; older files; wrong types named."""

import json

import pytest

from trinet.config.settings import NOT_SAVED, TrainSettings
from trinet.core.errors import TrinetError


def test_args_json_round_trip():
    settings = TrainSettings(experiment_root="/exp", seed=3, head_name="bnneck", test_feature="before",
                             lr_schedule="multistep", lr_milestones=(10, 20), margin=0.3, flip_augment=True)
    saved = json.loads(json.dumps(settings.saved()))  # through JSON, as args.json
    assert not set(NOT_SAVED) & set(saved)
    again, lacking = TrainSettings.from_saved(saved, experiment_root="/exp")
    assert again == settings and lacking == []


def test_an_older_args_json_gets_the_defaults_of_what_it_lacks():
    saved = TrainSettings(seed=1).saved()
    del saved["pooling"], saved["id_loss_weight"]
    settings, lacking = TrainSettings.from_saved(saved)
    assert lacking == ["id_loss_weight", "pooling"]
    assert (settings.pooling, settings.id_loss_weight) == ("avg", 0.0)


@pytest.mark.parametrize("values, words", [
    ({"batch_p": "many"}, "setting 'batch_p' has the value 'many'; expected int"),
    ({"batch_p": True}, "setting 'batch_p' has the value True; expected int"),
    ({"flip_augment": 1}, "setting 'flip_augment' has the value 1; expected bool"),
    ({"learning_rate": "fast"}, "setting 'learning_rate' has the value 'fast'; expected int or float"),
    ({"colour": 1}, "unknown setting(s) colour"),
])
def test_wrong_values_are_named(values, words):
    with pytest.raises(TrinetError) as e:
        TrainSettings.from_saved(values, "exp/args.json")
    assert str(e.value).startswith("exp/args.json: ") and words in str(e.value)


def test_numbers_are_accepted_where_floats_are_expected():
    settings, _ = TrainSettings.from_saved({"learning_rate": 1, "margin": "soft"})
    assert settings.learning_rate == 1 and settings.margin == "soft"
