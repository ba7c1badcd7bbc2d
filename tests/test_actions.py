import pytest

from asar_data.actions import action_names, known_names, official_names


def test_shipped_lists_have_the_official_lengths():
    assert len(official_names("ntu")) == 120
    assert len(official_names("pku")) == 51
    assert len(action_names("ntu60", 60)) == 60
    assert len(set(official_names("ntu"))) == 120 and len(set(official_names("pku"))) == 51


@pytest.mark.parametrize(("dataset", "label", "name"), [
    ("ntu60", 0, "drink water"),                                   # A001
    ("ntu60", 42, "falling"),                                      # A043
    ("ntu60", 59, "walking apart from each other"),                # A060
    ("ntu120", 60, "put on headphone"),                            # A061
    ("ntu120", 108, "grab other person's stuff"),                  # A109, apostrophe as '
    ("ntu120", 119, "finger-guessing game (playing rock-paper-scissors)"),
    ("pku1", 0, "bow"),
    ("pku2", 7, "drink water"),
    ("pku1", 50, "writing"),
])
def test_known_names_sit_at_their_labels(dataset, label, name):
    assert action_names(dataset, label + 1)[label] == name


def test_ntu60_is_the_first_60_of_ntu120():
    assert action_names("ntu60", 60) == action_names("ntu120", 120)[:60]


def test_names_carry_no_list_artefacts():
    for name in official_names("ntu") + official_names("pku"):
        assert name == name.strip() and not name.endswith(".") and "\u2019" not in name


def test_unknown_datasets_and_labels_past_the_list_fall_back_to_class_numbers():
    assert action_names("myimport", 3) == ["class 0", "class 1", "class 2"]
    assert known_names("myimport") == ()
    assert action_names("pku1", 53)[51:] == ["class 51", "class 52"]


def test_synthetic_stores_use_the_synthetic_motions_names():
    from asar_data.synth.motions import CLASS_NAMES

    assert action_names("synth60", 10) == list(CLASS_NAMES[:10])
    assert action_names("synth60", 10)[0] == "raise right arm"
