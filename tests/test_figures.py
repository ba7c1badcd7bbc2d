import struct

import numpy as np
import pytest

from asar_data.actions import action_names
from pipelines.figures import (
    PNG_SIGNATURE,
    confusion_figure,
    curves_figure,
    most_confused,
    png_bytes,
    read_tsne,
    short,
    title_line,
    tsne_figure,
    write_confusion,
    write_curves,
    write_tsne,
)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR."""
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def tick_texts(ax) -> tuple[list[str], list[str]]:
    return ([t.get_text() for t in ax.get_xticklabels()],
            [t.get_text() for t in ax.get_yticklabels()])


def confusion(classes: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    c = np.diag(g.integers(10, 30, classes))
    c[np.arange(classes), (np.arange(classes) + 1) % classes] = g.integers(0, 8, classes)
    return c


def test_confusion_names_both_axes_and_titles_the_run():
    names = action_names("ntu60", 10)
    title = title_line("linear-joint-asar", "ntu60", "xview", "linear joint", 71.25)
    fig = confusion_figure(confusion(10), names, title)
    ax = fig.axes[0]
    xs, ys = tick_texts(ax)
    assert xs == ys == [short(n) for n in names]
    assert ys[8] == "standing up"                   # "(from sitting position)" dropped to fit
    assert fig._suptitle.get_text() == ("linear-joint-asar  ·  ntu60 xview  ·  linear joint  ·  "
                                        "top-1 71.2%")
    assert len(fig.axes) == 2                                   # the matrix and its colour bar
    assert fig.axes[1].get_ylabel() == "% of the true class"


def test_confusion_shows_only_the_classes_present():
    c = confusion(6)
    c[2, :] = 0
    c[:, 2] = 0                                         # class 2: no sample, never predicted
    names = action_names("pku1", 6)
    xs, ys = tick_texts(confusion_figure(c, names).axes[0])
    assert ys == [n for i, n in enumerate(names) if i != 2] == xs


def test_confusion_with_many_classes_lists_the_most_confused_pairs():
    c = confusion(60)
    c[5, 40] = 25                                               # the worst pair by far
    names = action_names("ntu60", 60)
    fig = confusion_figure(c, names, pairs=10)
    xs, _ = tick_texts(fig.axes[0])
    assert len(xs) == 60 and fig.axes[0].get_xticklabels()[0].get_fontsize() < 7
    panel = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert f"{names[5]} \u2192 {short(names[40], 24)}" in panel
    assert not fig.axes[0].texts                                # no counts in 3600 cells
    width, height = png_size(png_bytes(fig))
    assert 1500 < width < 3000 and 1200 < height < 3000


def test_most_confused_orders_off_diagonal_cells():
    c = np.array([[5, 3, 0], [1, 6, 0], [0, 4, 2]])
    assert most_confused(c, 2) == [(2, 1, 4, 4 / 6), (0, 1, 3, 3 / 8)]
    assert most_confused(np.eye(3, dtype=int), 5) == []


def test_short_names_drop_details_then_cut():
    assert short("drink water") == "drink water"
    assert short("use a fan (with hand or paper)/feeling warm", 20) == "use a fan"
    assert short("support somebody with one's hand", 12) == "support som\u2026"


def test_written_confusion_is_a_png_of_sensible_size(tmp_path):
    out = tmp_path / "confusion.png"
    size = write_confusion(str(out), confusion(10), action_names("synth60", 10), "t")
    data = out.read_bytes()
    assert len(data) == size and 400 < png_size(data)[0] < 1400
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def blobs(classes: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    labels = g.integers(0, classes, n)
    return g.normal(size=(classes, 2))[labels] * 20 + g.normal(size=(n, 2)), labels


def legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_tsne_legend_names_the_classes_present():
    points, labels = blobs(10, 200)
    labels[labels == 3] = 4                                     # class 3 absent
    names = action_names("synth60", 10)
    fig = tsne_figure(points, labels, names, "t-SNE of run")
    assert legend_texts(fig) == [n for i, n in enumerate(names) if i != 3]
    assert fig._suptitle.get_text() == "t-SNE of run"


def test_tsne_with_many_classes_numbers_the_legend_and_the_centroids():
    points, labels = blobs(60, 3000)
    names = action_names("ntu60", 60)
    fig = tsne_figure(points, labels, names)
    texts = legend_texts(fig)
    assert len(texts) == 60 and texts[59] == " 60 walking apart from each other"
    assert fig.legends[0]._ncols == 3
    assert sorted(int(t.get_text()) for t in fig.axes[0].texts) == list(range(1, 61))


def test_tsne_coordinates_round_trip_with_the_sample_names(tmp_path):
    points, labels = blobs(4, 50)
    names = [f"S001C001P001R001A{i:03d}" for i in range(50)]
    files = write_tsne(str(tmp_path / "tsne.png"), points, labels, action_names("ntu60", 4),
                       names)
    assert files["coordinates"] == str(tmp_path / "tsne.npy")
    back, back_names = read_tsne(str(tmp_path / "tsne"))
    assert back.dtype == np.float32 and np.array_equal(back, points.astype(np.float32))
    assert back_names == names
    assert np.load(tmp_path / "tsne.npy", allow_pickle=False).shape == (50, 2)
    assert png_size((tmp_path / "tsne.png").read_bytes())[0] > 600


def test_tsne_coordinates_need_one_plain_name_per_point(tmp_path):
    points, labels = blobs(2, 5)
    with pytest.raises(ValueError, match="one sample name"):
        write_tsne(str(tmp_path / "t.png"), points, labels, ["a", "b"], ["x"] * 4)
    with pytest.raises(ValueError, match="one sample name"):
        write_tsne(str(tmp_path / "t.png"), points, labels, ["a", "b"], ["x\ny"] * 5)


def records(epochs: int, active_from: int) -> list[dict]:
    return [{"epoch": e, "loss": 9.0 / e, "lr": 0.1 if e < 8 else 0.01,
             "relabel_c": min(1.0, e / 5), "active_sampling": e >= active_from,
             "seconds": 1.0, "samples_per_s": 100.0} for e in range(1, epochs + 1)]


def test_curves_plot_loss_lr_and_relabel_weight_and_mark_active_sampling(tmp_path):
    fig = curves_figure(records(10, 6), "asar300")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["loss", "learning rate", "relabel weight c"]
    assert fig.axes[1].get_yscale() == "log"
    for ax in fig.axes:
        assert list(ax.lines[0].get_ydata()) == [r[k] for r in records(10, 6)
                                                 for k in [{"loss": "loss",
                                                            "learning rate": "lr",
                                                            "relabel weight c": "relabel_c"}
                                                           [ax.get_ylabel()]]]
        assert list(ax.lines[1].get_xdata()) == [6, 6]        # the active-sampling line
    assert "epoch 6" in fig.axes[0].texts[0].get_text()
    out = tmp_path / "curves.png"
    assert write_curves(str(out), records(10, 6)) == len(out.read_bytes())


def test_curves_without_active_sampling_draw_no_marker():
    fig = curves_figure(records(3, 99))
    assert all(len(ax.lines) == 1 for ax in fig.axes) and not fig.axes[0].texts
