"""Folder-of-JPEG reader on the 1,400 real Galaxy Zoo 2 cutouts."""

import shutil
import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image as PILImage

from astroembed.data.readers import ReaderWarning, iter_image_folder, read_image_folder


@pytest.mark.slow  # decodes all 1,400 JPEGs: ~5-15 s depending on machine load
def test_whole_gz2_folder_lazily(gz2_dir):
    counts = Counter()
    start = time.perf_counter()
    for g in iter_image_folder(gz2_dir):
        counts[g.labels["class"]] += 1
        assert g.image.shape == (3, 424, 424)
        assert np.isnan(g.ra) and np.isnan(g.dec) and not g.has_position
    elapsed = time.perf_counter() - start
    assert counts == {"spirals": 700, "non_spirals": 700}
    assert elapsed < 60  # a few seconds on a free machine; generous for a loaded CI box


def test_pixels_are_the_jpeg_values(gz2_dir):
    path = sorted((gz2_dir / "spirals").glob("*.jpg"))[0]
    # Folder = `spirals` itself: images sit directly in it, so there is no class label.
    g = next(iter_image_folder(gz2_dir / "spirals"))
    assert g.object_id == path.stem and "class" not in g.labels
    ref = np.asarray(PILImage.open(path)).astype(np.float32)  # (H, W, 3)
    assert g.image.bands == ("R", "G", "B") and g.image.flux.dtype == np.float32
    np.testing.assert_array_equal(g.image.flux, ref.transpose(2, 0, 1))
    assert 0 <= g.image.flux.min() and g.image.flux.max() <= 255


def test_read_image_folder_returns_every_record(gz2_dir, tmp_path):
    for sub in ("spirals", "non_spirals"):
        (tmp_path / sub).mkdir()
        for p in sorted((gz2_dir / sub).glob("*.jpg"))[:4]:
            shutil.copy(p, tmp_path / sub / p.name)
    records = read_image_folder(tmp_path, workers=2)
    assert len(records) == 8
    assert Counter(r.labels["class"] for r in records) == {"spirals": 4, "non_spirals": 4}
    # Same records, same order, with or without threads.
    serial = read_image_folder(tmp_path, workers=1)
    assert [r.object_id for r in serial] == [r.object_id for r in records]
    np.testing.assert_array_equal(serial[5].image.flux, records[5].image.flux)


def test_labels_and_positions_from_csv(gz2_dir, tmp_path):
    spirals = sorted((gz2_dir / "spirals").glob("*.jpg"))[:3]
    for p in spirals:
        shutil.copy(p, tmp_path / p.name)
    csv = tmp_path.parent / f"{tmp_path.name}_labels.csv"
    rows = ["GalaxyID,ra,dec,smooth_fraction,survey"]
    for i, p in enumerate(spirals[:2]):
        rows.append(f"{p.stem},{10 + i},{-5 - i},0.{i + 1},SDSS")
    csv.write_text("\n".join(rows) + "\n")
    with pytest.warns(ReaderWarning, match="1 of 3 images have no row"):
        records = read_image_folder(tmp_path, labels_csv=csv)
    by_id = {g.object_id: g for g in records}
    first = by_id[spirals[0].stem]
    assert (first.ra, first.dec) == (10.0, -5.0)
    assert first.labels == {"smooth_fraction": 0.1, "survey": "SDSS"}
    assert np.isnan(by_id[spirals[2].stem].ra) and by_id[spirals[2].stem].labels == {}
