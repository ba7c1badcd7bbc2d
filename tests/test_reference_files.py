"""Reference folders: restricted label pickles, atomic writes, checked memory-mapped arrays."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from asar_data.errors import AsarError
from asar_data.reference_files import (
    ReferenceFileError,
    RefusedPickleError,
    check_labels,
    load_label_pickle,
    open_reference_data,
    restricted_loads,
    write_label_pickle,
)


class RunsCommand:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_that_would_run_a_command_is_refused_by_name():
    with pytest.raises(RefusedPickleError, match=r"refused to load global (posix|nt)\.system"):
        load_label_pickle(pickle.dumps((["a"], [RunsCommand()])))


def test_pickle_of_other_callables_is_refused():
    with pytest.raises(RefusedPickleError, match="builtins.eval"):
        restricted_loads(pickle.dumps(eval))
    payload = pickle.dumps(b"x", protocol=2).replace(b"latin1", b"hex_c\x00")  # not latin-1
    with pytest.raises((RefusedPickleError, pickle.UnpicklingError)):
        restricted_loads(payload)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_labels_and_names_load_as_plain_python(protocol):
    names = np.array(["S001C001P001R001A001.skeleton", "S001C001P001R001A002.skeleton"])
    for labels in ([np.int64(0), np.int64(1)], np.array([0, 1]), [0, 1]):
        got = load_label_pickle(pickle.dumps((names, labels), protocol=protocol))
        assert got == (list(names), [0, 1])
        assert type(got[0][0]) is str and type(got[1][0]) is int


def test_label_pickle_of_another_shape_is_refused():
    for obj in ({"a": 1}, (["a", "b"], [1]), (["a"], [1.5]), ([1], [1])):
        with pytest.raises(ValueError):
            load_label_pickle(pickle.dumps(obj))


def test_write_then_load_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "train_label.pkl"
    write_label_pickle(path, ["a.skeleton", "b.skeleton"], np.array([3, 4]))
    assert load_label_pickle(path) == (["a.skeleton", "b.skeleton"], [3, 4])
    with open(path, "rb") as f:  # what the reference tools read back
        assert pickle.load(f) == (["a.skeleton", "b.skeleton"], [3, 4])
    write_label_pickle(path, ["c"], [5])
    assert load_label_pickle(path.read_bytes()) == (["c"], [5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_label.pkl"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "val_label.pkl"
    write_label_pickle(path, ["a"], [1])
    with pytest.raises(ValueError):
        write_label_pickle(path, ["a", "b"], [1])
    with pytest.raises(TypeError):
        write_label_pickle(path, ["a"], [object()])
    assert load_label_pickle(path) == (["a"], [1])
    assert [p.name for p in tmp_path.iterdir()] == ["val_label.pkl"]


def test_reference_data_opens_memory_mapped(tmp_path):
    path = tmp_path / "train_data.npy"
    arr = np.arange(2 * 3 * 4 * 25 * 2, dtype=np.float32).reshape(2, 3, 4, 25, 2)
    np.save(path, arr)
    data = open_reference_data(path)
    assert isinstance(data, np.memmap) and data.shape == (2, 3, 4, 25, 2)
    assert np.array_equal(data[1], arr[1])


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 3, 4, 25), np.float32), r"expected shape \(N, 3, T, 25, M\)"),
    (np.zeros((2, 2, 4, 25, 2), np.float32), "found"),
    (np.zeros((2, 3, 4, 18, 2), np.float32), "found"),
    (np.zeros((2, 3, 4, 25, 2), np.int16), "float32 or float64"),
    (np.array([{"a": 1}], dtype=object), "not a plain numeric"),
])
def test_reference_data_of_another_kind_is_refused_naming_the_file(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(ValueError, match=message) as err:
        open_reference_data(path)
    assert "bad.npy" in str(err.value)


def test_a_truncated_or_refused_pickle_is_an_expected_failure_naming_the_file(tmp_path):
    path = tmp_path / "train_label.pkl"
    path.write_bytes(pickle.dumps((["a", "b"], [0, 1]))[:-3])
    with pytest.raises(ReferenceFileError, match="truncated") as err:
        load_label_pickle(path)
    assert str(err.value).startswith(str(path)) and isinstance(err.value, AsarError)
    with pytest.raises(RefusedPickleError) as err:
        load_label_pickle(pickle.dumps((["a"], [RunsCommand()])), source="x/val_label.pkl")
    assert str(err.value).startswith("x/val_label.pkl: refused")
    assert isinstance(err.value, AsarError)


def test_labels_must_lie_in_the_classes_and_fit_the_store():
    check_labels([0, 1, 59], ["a", "b", "c"], 60, "l.pkl")
    check_labels([0, 32767], ["a", "b"], None, "l.pkl")
    for labels, classes, fragment in (([0, -2], None, "label -2 of sample 'b'"),
                                      ([32768, 0], None, "0-32767"),
                                      ([0, 60], 60, r"labels must be 0-59 \(--classes 60\)"),
                                      ([0], 40000, "--classes 40000 is outside")):
        with pytest.raises(ReferenceFileError, match=fragment):
            check_labels(labels, ["a", "b"], classes, "l.pkl")
