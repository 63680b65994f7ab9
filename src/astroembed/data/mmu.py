"""Write the Multimodal Universe (MMU) HDF5 layout, with MMU's column conventions; re-exports the reader.

One HDF5 file per HEALPix tile (nside 16, NESTED), in the hive layout

    <root>/<survey>/<config>/healpix=<N>/001-of-001.hdf5

Each file is a table of columns (one HDF5 dataset per column, first axis = object):

    object_id, ra, dec, healpix
    image_array (n, bands, H, W), image_band (n, bands), image_ivar, image_mask, image_psf_fwhm (n, bands),
    image_scale (n, bands)
    spectrum_flux (n, L), spectrum_ivar, spectrum_lambda, spectrum_mask, spectrum_lsf_sigma
    photometry_flux (n, P), photometry_ivar (n, P), photometry_band (n, P)
    any further column: a label (numbers, or UTF-8 strings)

What each column means (mask polarity, units, padding, dtypes) is MMU's, tabulated in
:mod:`astroembed.data.mmu_conventions`: ``spectrum_mask`` is written True = bad pixel, spectra of different
lengths are padded SDSS-style (lambda -1, flux and lsf copied from the last pixel, ivar 0, mask True),
``object_id`` is int64 when every id is a decimal integer and fixed-length UTF-8 otherwise, band names and
text labels are fixed-length UTF-8. Each tile carries an ``astroembed_conventions`` attribute (ignored by MMU's
readers) and each survey folder gets a ``<survey>.py`` loading script in the style of MMU's
(:mod:`astroembed.data.mmu_builder`), so ``datasets.load_dataset`` reads it as it reads MMU's.
An image without inverse variance is stored with ``image_ivar`` all NaN in that row ("unknown").

Writing is streaming and atomic: each tile is written to ``*.tmp`` and renamed when complete, so a
crash never leaves a half-written file under its final name.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from ..files import commit
from .healpix import healpix_index
from .mmu_builder import write_builder_script
from .mmu_conventions import (
    CONVENTIONS_ATTRIBUTE,
    RESERVED,
    STRING,
    TILE_FILE,
    conventions_attribute,
)

# The reader lives in mmu_read; its public names (and decode_strings, used by info.py) stay importable from here.
from .mmu_read import MMUSurvey, decode_strings, find_tiles, open_survey  # noqa: F401
from .records import Galaxy, InvalidDataError, Photometry, Spectrum

__all__ = ["MMUWriter", "write_survey", "tile_path", "find_tiles", "MMUSurvey", "open_survey"]

CHUNK_BYTES = 64 * 1024


def tile_path(root, survey: str, config: str, healpix: int) -> Path:
    return Path(root) / survey / config / f"healpix={int(healpix)}" / TILE_FILE


# ----------------------------------------------------------------------------------------------- write

class _TileWriter:
    """Appends rows to one tile file; columns are created on first use and grown as rows arrive."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():  # appending to a tile of an existing survey: start from a copy (mmu_merge.py)
            from .mmu_merge import start_merged_tile

            self.file, self.n = start_merged_tile(path, self.tmp)
        else:
            self.file = h5py.File(self.tmp, "w")
            self.n = 0

    def _dataset(self, name, sample: np.ndarray, dtype, fill):
        if name in self.file:
            return self.file[name]
        shape = (self.n,) + sample.shape
        # Readers fetch one object at a time (random access from a DataLoader), so a chunk should hold
        # about one row of a big column: a chunk larger than HDF5's 1 MB chunk cache is re-read whole
        # for every row (with 4 MB image chunks, each sample cost a whole chunk read).
        rows = max(1, min(1024, CHUNK_BYTES // max(1, sample.nbytes)))
        ds = self.file.create_dataset(
            name, shape=shape, maxshape=(None,) + (None,) * sample.ndim, dtype=dtype,
            chunks=(rows,) + tuple(max(1, d) for d in sample.shape), fillvalue=fill)
        return ds

    def append(self, rows: dict[str, list], kinds: dict[str, tuple]):
        """rows: column -> list of per-object values (np arrays or scalars); kinds: column -> (dtype, fill)."""
        n_new = len(rows["object_id"])
        start, stop = self.n, self.n + n_new
        for name, values in rows.items():
            dtype, fill = kinds[name]
            if dtype is STRING:  # h5py writes variable-length UTF-8 only from object arrays of str
                arrays = [np.asarray(v, dtype=str).astype(object) for v in values]
            else:
                arrays = [np.asarray(v) for v in values]
            sample = arrays[0]
            ds = self._dataset(name, sample, dtype, fill)
            # Grow trailing axes for padded spectra; rows written earlier keep their fill (padding).
            trailing = tuple(max(ds.shape[i + 1], max(a.shape[i] for a in arrays)) for i in range(sample.ndim))
            ds.resize((stop,) + trailing)
            if sample.ndim == 0 or all(a.shape == trailing for a in arrays):
                ds[start:stop] = np.stack(arrays)
            else:
                block = np.full((n_new,) + trailing, fill, dtype=ds.dtype)
                for i, a in enumerate(arrays):
                    block[(i,) + tuple(slice(0, s) for s in a.shape)] = a
                ds[start:stop] = block
        for name in list(self.file.keys()):  # columns absent from this batch keep their fill value
            ds = self.file[name]
            if ds.shape[0] < stop:
                ds.resize((stop,) + ds.shape[1:])
        self.n = stop

    def close(self):
        _finish_tile(self.file)
        self.file.close()
        commit(self.tmp, self.path)

    def abort(self):
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class MMUWriter:
    """Streams validated galaxies into MMU tiles. Use as a context manager; tiles appear on exit.

    Into a survey config that already has tiles, ``if_exists="append"`` (the default) adds the new
    objects, merging each tile atomically, and an object id already in the survey is an error naming it;
    ``if_exists="error"`` refuses to write there. Nothing already written is ever replaced
    (:mod:`astroembed.data.mmu_merge`).

    >>> with MMUWriter("out", survey="mysurvey") as writer:
    ...     writer.add(galaxies)
    """

    def __init__(self, root, survey: str, config: str = "default", source: str | None = None,
                 buffer_size: int = 256, if_exists: str = "append"):
        self.root, self.survey, self.config = Path(root), survey, config
        self.source = source
        self.buffer_size = buffer_size
        self._tiles: dict[int, _TileWriter] = {}
        self._buffer: dict[int, list[Galaxy]] = defaultdict(list)
        self._seen: set[str] = set()
        self._image_shape: tuple | None = None
        self._label_kinds: dict[str, tuple] = {}
        self.n_written = 0
        self.n_masked: dict[str, int] = defaultdict(int)
        from .mmu_merge import read_existing

        existing = read_existing(self.root / survey / config, if_exists)
        self._lock = existing.lock  # held until close() or abort: other writers of this config wait
        self._existing_tile_of = existing.tile_of
        self._image_shape = existing.image_shape
        self._label_kinds.update(existing.label_kinds)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            for writer in self._tiles.values():
                writer.abort()
            self._lock.release()
        return False

    def add(self, galaxies: Iterable[Galaxy]) -> None:
        for galaxy in galaxies:
            for modality, count in galaxy.validate(self.source).items():
                self.n_masked[modality] += count
            self._check_new_id(galaxy.object_id, self._seen)
            self._seen.add(galaxy.object_id)
            self._image_shape = self._check_image_shape(galaxy, self._image_shape)
            tile = int(healpix_index(galaxy.ra, galaxy.dec)[0])
            self._buffer[tile].append(galaxy)
            if len(self._buffer[tile]) >= self.buffer_size:
                self._flush(tile)

    def check(self, galaxies: Sequence[Galaxy]) -> None:
        """Raise the InvalidDataError that :meth:`add` would raise for a duplicated object id (in this write
        or in the survey appended to) or an image of another shape, without adding anything: a caller can
        then skip the whole file instead of writing part of it."""
        ids, shape = set(self._seen), self._image_shape
        for galaxy in galaxies:
            self._check_new_id(galaxy.object_id, ids)
            ids.add(galaxy.object_id)
            shape = self._check_image_shape(galaxy, shape)

    def _check_new_id(self, object_id: str, seen) -> None:
        """The id must be new to this write (``seen``) and to the survey being appended to."""
        if object_id in seen:
            raise InvalidDataError("duplicated object id", source=self.source, object_id=object_id,
                                   field="object_id")
        if object_id in self._existing_tile_of:
            raise InvalidDataError(f"object id already in the survey being appended to (tile "
                                   f"{self._existing_tile_of[object_id]}); ids must be unique across a survey",
                                   source=self.source, object_id=object_id, field="object_id")

    def _check_image_shape(self, galaxy: Galaxy, expected: tuple | None) -> tuple | None:
        """The survey's (shape, bands) once ``galaxy`` is in it (``expected`` until then); raises when its
        image differs from ``expected``."""
        if galaxy.image is None:
            return expected
        key = (galaxy.image.flux.shape, galaxy.image.bands)
        if expected is not None and key != expected:
            raise InvalidDataError(
                f"image shape/bands {key} differ from the survey's {expected}; the MMU layout keeps "
                f"one image shape per survey config (write it under another --config)",
                source=self.source, object_id=galaxy.object_id, field="image_array")
        return key

    def _label_kind(self, name, value):
        if name in RESERVED:
            raise InvalidDataError(f"label name '{name}' is reserved for a column of the layout",
                                   source=self.source, field=name)
        if isinstance(value, (str, bytes)):
            kind = (STRING, "")
        elif isinstance(value, (bool, np.bool_)):
            kind = (np.int8, -1)
        elif isinstance(value, (int, np.integer)):
            kind = (np.int64, -1)
        else:
            kind = (np.float64, np.nan)
        previous = self._label_kinds.setdefault(name, kind)
        if previous[0] is STRING and kind[0] is not STRING or previous[0] is not STRING and kind[0] is STRING:
            raise InvalidDataError(f"label mixes text and numbers ({value!r})", source=self.source, field=name)
        if previous[0] == np.int64 and kind[0] == np.float64:
            raise InvalidDataError(f"label was an integer, then {value!r}", source=self.source, field=name)
        return previous

    def _flush(self, tile: int):
        galaxies = self._buffer.pop(tile, [])
        if not galaxies:
            return
        if tile not in self._tiles:
            self._tiles[tile] = _TileWriter(tile_path(self.root, self.survey, self.config, tile))
        rows: dict[str, list] = defaultdict(list)
        kinds: dict[str, tuple] = {
            "object_id": (STRING, ""), "ra": (np.float64, np.nan), "dec": (np.float64, np.nan),
            "healpix": (np.int64, -1)}
        for g in galaxies:
            rows["object_id"].append(g.object_id)
            rows["ra"].append(g.ra)
            rows["dec"].append(g.dec)
            rows["healpix"].append(tile)
        self._rows_image(galaxies, rows, kinds)
        self._rows_spectrum(galaxies, rows, kinds)
        self._rows_photometry(galaxies, rows, kinds)
        label_names = sorted({k for g in galaxies for k in g.labels})
        for name in label_names:
            for g in galaxies:
                if name in g.labels:
                    kinds[name] = self._label_kind(name, g.labels[name])
            dtype, fill = kinds[name]
            rows[name] = [g.labels.get(name, fill) for g in galaxies]
        self._tiles[tile].append(dict(rows), kinds)
        self.n_written += len(galaxies)

    @staticmethod
    def _rows_image(galaxies, rows, kinds):
        if not any(g.image is not None for g in galaxies):
            return
        shape = next(g.image.flux.shape for g in galaxies if g.image is not None)
        nb = shape[0]
        kinds.update({"image_array": (np.float32, 0.0), "image_ivar": (np.float32, np.nan),
                      "image_mask": (np.bool_, False), "image_band": (STRING, ""),
                      "image_psf_fwhm": (np.float32, np.nan), "image_scale": (np.float64, np.nan)})
        for g in galaxies:
            im = g.image
            if im is None:  # an object of this survey without an image: all fill values
                rows["image_array"].append(np.zeros(shape, np.float32))
                rows["image_ivar"].append(np.full(shape, np.nan, np.float32))
                rows["image_mask"].append(np.zeros(shape, bool))
                rows["image_band"].append(np.array([""] * nb, dtype=object))
                rows["image_psf_fwhm"].append(np.full(nb, np.nan, np.float32))
                rows["image_scale"].append(np.full(nb, np.nan, np.float32))
                continue
            rows["image_array"].append(im.flux)
            rows["image_ivar"].append(im.ivar if im.ivar is not None else np.full(shape, np.nan, np.float32))
            rows["image_mask"].append(im.mask)
            rows["image_band"].append(np.array(im.bands, dtype=object))
            rows["image_psf_fwhm"].append(im.psf_fwhm)
            rows["image_scale"].append(np.full(nb, im.pixel_scale, np.float64))

    @staticmethod
    def _rows_spectrum(galaxies, rows, kinds):
        if not any(g.spectrum is not None for g in galaxies):
            return
        # MMU's padding (scripts/sdss/build_parent_sample.py): lambda -1, ivar 0, mask True (= bad); flux and
        # lsf are copied from the last pixel when the tile is closed (_edge_pad_spectra).
        kinds.update({"spectrum_flux": (np.float32, 0.0), "spectrum_ivar": (np.float32, 0.0),
                      "spectrum_lambda": (np.float64, -1.0), "spectrum_mask": (np.bool_, True),
                      "spectrum_lsf_sigma": (np.float32, np.nan)})
        for g in galaxies:
            sp = g.spectrum
            if sp is None:
                sp = Spectrum(flux=np.zeros(1, np.float32), wavelength=np.array([-1.0]),
                              ivar=np.zeros(1, np.float32), mask=np.zeros(1, bool),
                              lsf_sigma=np.full(1, np.nan, np.float32))
            rows["spectrum_flux"].append(sp.flux)
            rows["spectrum_ivar"].append(sp.ivar)
            rows["spectrum_lambda"].append(np.asarray(sp.wavelength, np.float64))
            rows["spectrum_mask"].append(~np.asarray(sp.mask, bool))  # records: True = good; MMU: True = bad
            rows["spectrum_lsf_sigma"].append(sp.lsf_sigma)

    @staticmethod
    def _rows_photometry(galaxies, rows, kinds):
        if not any(g.photometry is not None for g in galaxies):
            return
        bands = next(g.photometry.bands for g in galaxies if g.photometry is not None)
        kinds.update({"photometry_flux": (np.float32, np.nan), "photometry_ivar": (np.float32, 0.0),
                      "photometry_band": (STRING, "")})
        for g in galaxies:
            ph = g.photometry or Photometry(bands=bands, flux=np.full(len(bands), np.nan, np.float32),
                                            ivar=np.zeros(len(bands), np.float32))
            rows["photometry_flux"].append(ph.flux)
            rows["photometry_ivar"].append(ph.ivar)
            rows["photometry_band"].append(np.array(ph.bands, dtype=object))

    def close(self) -> list[Path]:
        for tile in list(self._buffer):
            self._flush(tile)
        paths = []
        for writer in self._tiles.values():
            writer.close()
            paths.append(writer.path)
        self._tiles.clear()
        if paths:
            write_builder_script(self.root, self.survey)
        self._lock.release()
        return sorted(paths)

    @property
    def paths(self) -> list[Path]:
        return sorted(tile_path(self.root, self.survey, self.config, t) for t in self._tiles)


def _finish_tile(f: h5py.File, rows_per_step: int = 1024) -> None:
    """Give a complete tile MMU's dtypes and padding, and record its conventions.

    Strings are streamed as variable-length UTF-8 (their width is unknown until the end); MMU's writers
    store integers (DESI TARGETID, SDSS SPECOBJID) or fixed-length UTF-8 (Legacy Surveys object_id, every
    image_band), and MMU's loading scripts call ``.decode`` on band names and ``str()`` on ids.
    """
    for name in list(f.keys()):
        ds = f[name]
        info = h5py.check_string_dtype(ds.dtype)
        if info is None or info.length is not None:
            continue
        values = ds[:]
        encoded = np.array([v if isinstance(v, bytes) else str(v).encode() for v in values.ravel()],
                           dtype=object).reshape(values.shape)
        chunks = ds.chunks
        del f[name]
        growable = {"chunks": chunks, "maxshape": (None,) * values.ndim}  # as streamed: rows can still be added
        if name == "object_id" and _all_decimal_integers(encoded):
            f.create_dataset(name, data=np.array([int(v) for v in encoded], np.int64), **growable)
            continue
        width = max([1] + [len(v) for v in encoded.ravel()])
        f.create_dataset(name, data=encoded.astype(h5py.string_dtype("utf-8", width)), **growable)
    if "spectrum_lambda" in f:
        _edge_pad_spectra(f, rows_per_step)
    f.attrs[CONVENTIONS_ATTRIBUTE] = conventions_attribute()


def _all_decimal_integers(ids: np.ndarray) -> bool:
    """True when every id is the canonical decimal text of an int64 (so int64 storage loses nothing)."""
    for raw in ids:
        text = raw.decode()
        try:
            value = int(text)
        except ValueError:
            return False
        if str(value) != text or not -2**63 <= value < 2**63:
            return False
    return len(ids) > 0


def _edge_pad_spectra(f: h5py.File, rows_per_step: int) -> None:
    """Copy each spectrum's last pixel of flux and lsf into its padding, as MMU's SDSS writer does."""
    lam_ds = f["spectrum_lambda"]
    n_rows, width = lam_ds.shape
    columns = [c for c in ("spectrum_flux", "spectrum_lsf_sigma") if c in f]
    for start in range(0, n_rows, rows_per_step):
        stop = min(n_rows, start + rows_per_step)
        n_valid = (lam_ds[start:stop] > 0).sum(axis=1)
        ragged = np.flatnonzero((n_valid > 0) & (n_valid < width))
        if ragged.size == 0:
            continue
        for name in columns:
            block = f[name][start:stop]
            for r in ragged:
                block[r, n_valid[r]:] = block[r, n_valid[r] - 1]
            f[name][start:stop] = block


def write_survey(galaxies: Iterable[Galaxy], root, survey: str, config: str = "default",
                 source: str | None = None, if_exists: str = "append") -> list[Path]:
    """Write galaxies into the MMU layout under ``root`` (appending to a survey already there, see
    :class:`MMUWriter`); returns every tile file of the survey config."""
    writer = MMUWriter(root, survey, config, source=source, if_exists=if_exists)
    with writer:
        writer.add(galaxies)
    return sorted({tile_path(root, survey, config, int(p.parent.name.split("=")[1]))
                   for p in Path(root, survey, config).glob(f"healpix=*/{TILE_FILE}")})
