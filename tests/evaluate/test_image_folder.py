"""`astroembed evaluate` on a folder of JPEG/PNG colour cutouts (Galaxy Zoo style): the folder is embedded
into a catalogue, its sub-folders are the labels (column ``class``), the split is the folder-order split
that pretraining on the folder leaves out, and the supervised baseline trains on the folder's images."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.data.readers.image_folder import list_images, load_rgb
from astroembed.data.records import InvalidDataError
from astroembed.embed import EmbedConfig, embed_catalog
from astroembed.evaluate.inputs import load_labels, raw_data
from astroembed.evaluate.probes import held_out_ids
from astroembed.evaluate.raw_inputs import folder_images
from astroembed.preprocess.image import PreprocessConfig, standardize
from tests.embed.conftest import N_PER_CLASS, save_rgb_cnn, write_image_folder

@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: two threads per conv only contend
    yield
    torch.set_num_threads(threads)


def test_folder_labels_are_the_sub_folders_and_other_columns_are_refused(tmp_path):
    folder = write_image_folder(tmp_path / "gz")
    labels = load_labels(folder, ["class"])
    assert sorted(set(labels.columns["class"])) == ["non_spirals", "spirals"]
    assert dict(zip(labels.object_ids, labels.columns["class"]))["1003"] == "spirals"
    assert list(labels.object_ids) == [p.stem for p in list_images(folder)]  # the folder's own order
    with pytest.raises(InvalidDataError, match="no label column 'spiral'.*'class'") as info:
        load_labels(folder, ["spiral"])
    assert str(folder) in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidDataError, match="neither an MMU survey nor a folder"):
        raw_data(tmp_path / "empty")


def test_folder_images_are_standardised_as_pretraining_sees_them(tmp_path):
    folder = write_image_folder(tmp_path / "gz")
    ids = np.array(["1005", "3", "1000"])
    images, bands, pre = folder_images(raw_data(folder)["image_folder"], ids)
    assert bands == ["R", "G", "B"] and pre == PreprocessConfig.for_rgb(48) and images.shape == (3, 3, 96, 96)
    expected = standardize(torch.from_numpy(load_rgb(folder / "non_spirals" / "3.png"))[None], pre)[0]
    torch.testing.assert_close(images[1], expected.round().clamp(0, 255))
    with pytest.raises(InvalidDataError, match="no image in the folder"):
        folder_images(raw_data(folder)["image_folder"], np.array(["nope"]))


def test_evaluate_model_on_a_folder_with_the_supervised_baseline(tmp_path):
    """--model --data FOLDER: probes on the embeddings and a CNN trained from scratch on the folder's images,
    on the held-out objects of the folder-order split, at the label fractions given."""
    folder = write_image_folder(tmp_path / "gz")
    model = save_rgb_cnn(tmp_path / "m")
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(model), "--data", str(folder), "--tasks", "classification:class", "--probes",
            "linear", "--bootstrap", "10", "--supervised-steps", "2", "--label-fractions", "0.5,1", "--device",
            "cpu", "--no-report", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    n = 2 * N_PER_CLASS
    assert metrics["inputs"]["split"] == "given held-out ids" and metrics["inputs"]["n_test"] == round(0.3 * n)
    task = metrics["tasks"]["classification:class"]
    assert task["results"]["embedding"]["linear"]["metrics"]["balanced_accuracy"] > 0.8  # colour is easy
    scratch = task["results"]["supervised_image"]["from_scratch"]
    assert scratch["steps"] == 2 and "balanced_accuracy" in scratch["metrics"]
    curves = task["label_efficiency"]
    assert curves["embedding"]["fractions"] == curves["supervised_image"]["fractions"] == [0.5, 1.0]
    assert curves["embedding"]["n_labels"] == curves["supervised_image"]["n_labels"] == [17, 34]


def test_held_out_objects_are_those_of_the_folder_order_split(tmp_path, monkeypatch):
    """Pretraining on the folder trains on split_indices over the sorted files; evaluate holds out the rest."""
    from astroembed.evaluate import command

    folder = write_image_folder(tmp_path / "gz")
    seen = {}
    monkeypatch.setattr(command, "evaluate_embeddings", lambda *a, **k: seen.update(k))
    emb = embed_catalog(EmbedConfig(model=save_rgb_cnn(tmp_path / "m"), data=folder, out=tmp_path / "emb",
                                    device="cpu"), progress=False)
    command.evaluate_paths(emb, folder, "classification:class", tmp_path / "eval")
    files = list_images(folder)
    assert sorted(seen["held_out_ids"]) == sorted(held_out_ids([p.stem for p in files], 0.3, 0))


def test_labels_table_with_the_folder_as_data(tmp_path):
    """Labels from a table joined on the file stem; the supervised baseline still trains on --data's images
    and the split is still the folder's."""
    folder = write_image_folder(tmp_path / "gz")
    model = save_rgb_cnn(tmp_path / "m")
    stems = [p.stem for p in list_images(folder)]
    table = tmp_path / "labels.csv"
    table.write_text("object_id,spiral\n" + "".join(f"{s},{int(int(s) >= 1000)}\n" for s in stems))
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(model), "--data", str(folder), "--labels", str(table), "--tasks",
            "classification:spiral", "--probes", "linear", "--bootstrap", "10", "--supervised-steps", "1",
            "--label-fractions", "1", "--device", "cpu", "--no-report", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"]["split"] == "given held-out ids"
    assert set(metrics["tasks"]["classification:spiral"]["results"]) == {"embedding", "supervised_image"}
    bad = CliRunner().invoke(app, args[:5] + ["--tasks", "classification:spiral", "--out", str(tmp_path / "b"),
                                              "--labels", str(folder)])
    assert bad.exit_code == 2 and "no label column 'spiral'" in bad.output


def test_pca_pixels_of_a_folder_is_a_baseline(tmp_path):
    """--baseline pca_pixels on a folder: the binned 0-1 pixels of the frame the networks see, reduced by a
    PCA fitted on the training images only (at most one component per training image)."""
    from astroembed.evaluate.baselines import pca_pixels

    folder = write_image_folder(tmp_path / "gz")
    features = pca_pixels(folder, n_components=8, bin_factor=4)
    assert features.X.shape == (2 * N_PER_CLASS, 3 * 16 * 16) and 0 <= features.X.min() and features.X.max() <= 1
    assert list(features.object_ids) == [p.stem for p in list_images(folder)] and features.transform is not None
    red = features.X.reshape(len(features.X), 3, 16, 16)[:, 0, 6:10, 6:10].mean((1, 2))  # the disc's red
    spiral = np.array([int(i) >= 1000 for i in features.object_ids])
    assert red[spiral].min() > red[~spiral].max()  # the pixels carry the colour that tells the classes apart
    out = tmp_path / "eval"
    emb = embed_catalog(EmbedConfig(model=save_rgb_cnn(tmp_path / "m"), data=folder, out=tmp_path / "emb",
                                    device="cpu"), progress=False)
    result = CliRunner().invoke(app, ["evaluate", "--embeddings", str(emb), "--labels", str(folder), "--baseline",
                                      "pca_pixels", "--tasks", "classification:class", "--probes", "linear",
                                      "--bootstrap", "10", "--label-fractions", "none", "--no-report", "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "metrics.json").read_text())["tasks"]["classification:class"]["results"]
    assert set(results) == {"embedding", "pca_pixels"}
    assert 0 <= results["pca_pixels"]["linear"]["metrics"]["balanced_accuracy"] <= 1
