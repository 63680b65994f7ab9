"""Distributed catalogue embedding: a 2-worker Dask LocalCluster writes the same parts, bit for bit, as the
single-process run with one torch thread; each worker loads the model once; a rerun skips; a part from
another model is an error."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from astroembed.data.records import InvalidDataError
from astroembed.embed import EmbedConfig, embed_catalog_dask, read_embeddings
from astroembed.embed.distributed import worker_model_loads

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster


def test_two_workers_give_the_single_process_bytes(embed_inputs, reference_run, cluster, tmp_path):
    data, _, model, other = embed_inputs
    config = EmbedConfig(model=str(model), data=str(data), out=str(tmp_path / "emb"), device="cpu", precision="32-true",
                         batch_size=16)
    out = embed_catalog_dask(config, cluster.scheduler_address, progress=False)  # connect by address

    for got, want in zip(read_embeddings(out), read_embeddings(reference_run)):
        np.testing.assert_array_equal(got, want)
    reference_parts = sorted(reference_run.glob("healpix_*/part-0.parquet"))
    assert [p.relative_to(out) for p in sorted(out.glob("healpix_*/part-0.parquet"))] == \
        [p.relative_to(reference_run) for p in reference_parts]
    for ref in reference_parts:  # same rows in the same order within each part, same metadata
        got, want = pq.read_table(out / ref.relative_to(reference_run)), pq.read_table(ref)
        assert got.equals(want) and got.schema.metadata == want.schema.metadata

    with distributed.Client(cluster) as client:
        loads = client.run(worker_model_loads)
        assert len(loads) == 2 and sum(len(v) for v in loads.values()) >= 1
        assert all(n == 1 for per_worker in loads.values() for n in per_worker.values())  # once per worker

        before = {p: p.stat().st_mtime_ns for p in out.glob("healpix_*/part-0.parquet")}
        embed_catalog_dask(config, client, progress=False)  # nothing left to do
        assert {p: p.stat().st_mtime_ns for p in out.glob("healpix_*/part-0.parquet")} == before

        with pytest.raises(InvalidDataError, match="model_hash") as err:
            embed_catalog_dask(EmbedConfig(model=str(other), data=str(data), out=str(out), device="cpu"), client,
                               progress=False)
        assert "part-0.parquet" in str(err.value)
        assert {p: p.stat().st_mtime_ns for p in out.glob("healpix_*/part-0.parquet")} == before


def test_own_local_cluster_resumes_a_partial_run(embed_inputs, reference_run, tmp_path):
    data, _, model, _ = embed_inputs
    out = tmp_path / "emb"
    # Half the parts already exist (copied from the reference run): the cluster embeds only the rest.
    reference_parts = sorted(reference_run.glob("healpix_*/part-0.parquet"))
    for ref in reference_parts[::2]:
        (out / ref.parent.name).mkdir(parents=True)
        (out / ref.parent.name / ref.name).write_bytes(ref.read_bytes())
    copied = {p: p.stat().st_mtime_ns for p in out.glob("healpix_*/part-0.parquet")}
    config = EmbedConfig(model=str(model), data=str(data), out=str(out), device="cpu", precision="32-true",
                         batch_size=16)
    embed_catalog_dask(config, None, n_workers=1, progress=True)  # a fresh cluster
    assert {p: p.stat().st_mtime_ns for p in copied} == copied
    assert len(list(out.glob("healpix_*/part-0.parquet"))) == len(reference_parts)
    for got, want in zip(read_embeddings(out), read_embeddings(reference_run)):
        np.testing.assert_array_equal(got, want)
