"""Reading a catalogue back aligned to a given order of object ids: the join every report uses."""

import numpy as np
import pytest

from astroembed.data.records import InvalidDataError
from astroembed.embed import read_embeddings


def test_rows_come_back_in_the_order_asked(reference_run, embed_inputs):
    ids, ra, dec, vectors = read_embeddings(reference_run)
    assert list(ids) == sorted(ids)  # without object_ids: every row, sorted
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))[:7]
    wanted = ids[order]
    got_ids, got_ra, got_dec, got = read_embeddings(reference_run, object_ids=list(wanted))
    assert list(got_ids) == list(wanted)
    np.testing.assert_array_equal(got, vectors[order])
    np.testing.assert_array_equal(got_ra, ra[order])
    np.testing.assert_array_equal(got_dec, dec[order])
    # the galaxies' own positions, an independent reference for the join
    positions = {g.object_id: (g.ra, g.dec) for g in embed_inputs[1]}
    np.testing.assert_allclose(got_ra, [positions[o][0] for o in wanted])


def test_an_id_the_catalogue_lacks_is_named(reference_run):
    ids, *_ = read_embeddings(reference_run)
    with pytest.raises(InvalidDataError, match=r"1 object\(s\) not in the embedding catalogue.*'nope-1'"):
        read_embeddings(reference_run, object_ids=[ids[0], "nope-1"])
