"""A catalogue records the precision it was computed in, and a rerun in another precision does not mix
bf16 and fp32 parts in silence."""

import pyarrow.parquet as pq
import pytest

from astroembed.data.records import InvalidDataError
from astroembed.embed import EmbedConfig, embed_catalog


def test_a_rerun_in_another_precision_is_refused_naming_the_field(embed_inputs, tmp_path):
    data, _, model, _ = embed_inputs
    out = tmp_path / "emb"
    embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(out), device="cpu", batch_size=16,
                              precision="32-true"), progress=False)
    part = sorted(out.glob("healpix_*/part-0.parquet"))[0]
    assert pq.read_schema(part).metadata[b"precision"] == b"32-true"
    with pytest.raises(InvalidDataError, match="field 'precision'.*'32-true'.*'bf16-mixed'"):
        embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(out), device="cpu", batch_size=16,
                                  precision="bf16-mixed"), progress=False)
    # the same precision resumes (nothing to do), and overwrite re-embeds in the new one
    embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(out), device="cpu", batch_size=16,
                              precision="32-true"), progress=False)
    embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(out), device="cpu", batch_size=16,
                              precision="bf16-mixed", overwrite=True), progress=False)
    assert pq.read_schema(part).metadata[b"precision"] == b"bf16-mixed"
