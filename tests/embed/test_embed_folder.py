"""Embedding a folder of JPEG/PNG colour cutouts: one part with the file stems as ids and unknown positions,
vectors equal to the model's own embed of the decoded files, resumed and refused like a survey's parts."""

import numpy as np
import pytest

from astroembed.data.readers.image_folder import list_images, load_rgb
from astroembed.data.records import InvalidDataError
from astroembed.embed import EmbedConfig, embed_catalog, read_embeddings
from tests.embed.conftest import save_rgb_cnn, write_image_folder


def test_embed_writes_one_part_for_a_folder_and_resumes(tmp_path):
    """Vectors equal the model's own embed of the decoded files (images of two sizes in one batch); a rerun
    keeps the part, another model is refused unless overwrite."""
    import astroembed

    folder = write_image_folder(tmp_path / "gz", sizes=(48, 40))
    model, other = save_rgb_cnn(tmp_path / "m", 0), save_rgb_cnn(tmp_path / "m2", 1)
    out = embed_catalog(EmbedConfig(model=model, data=folder, out=tmp_path / "emb", device="cpu", batch_size=16),
                        progress=False)
    ids, ra, dec, vectors = read_embeddings(out)
    files = list_images(folder)
    assert sorted(ids) == sorted(p.stem for p in files) and np.isnan(ra).all() and np.isnan(dec).all()
    embedder = astroembed.load(model, device="cpu")
    for path in (files[0], files[1]):  # a 48 px and a 40 px cutout
        expected = embedder.embed(load_rgb(path)[None])[0]
        np.testing.assert_allclose(vectors[list(ids).index(path.stem)], expected, rtol=1e-4, atol=1e-5)
    part = next(out.glob("healpix_*/part-0.parquet"))
    mtime = part.stat().st_mtime_ns
    embed_catalog(EmbedConfig(model=model, data=folder, out=out, device="cpu"), progress=False)
    assert part.stat().st_mtime_ns == mtime  # done: skipped
    with pytest.raises(InvalidDataError, match="model_hash"):
        embed_catalog(EmbedConfig(model=other, data=folder, out=out, device="cpu"), progress=False)
    embed_catalog(EmbedConfig(model=other, data=folder, out=out, device="cpu", overwrite=True), progress=False)
    assert not np.allclose(read_embeddings(out)[3], vectors)
