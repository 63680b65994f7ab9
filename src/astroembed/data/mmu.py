"""Read and write the Multimodal Universe (MMU) HDF5 layout.

One HDF5 file per HEALPix tile (nside 16, NESTED), in the hive layout

    <root>/<survey>/<config>/healpix=<N>/001-of-001.hdf5

Each file is a table of columns (one HDF5 dataset per column, first axis = object):

    object_id, ra, dec, healpix
    image_array (n, bands, H, W), image_band (n, bands), image_ivar, image_mask, image_psf_fwhm (n, bands),
    image_scale (n, bands)
    spectrum_flux (n, L), spectrum_ivar, spectrum_lambda, spectrum_mask, spectrum_lsf_sigma
    photometry_flux (n, P), photometry_ivar (n, P), photometry_band (n, P)
    any further column: a label (numbers, or UTF-8 strings)

Spectra of different lengths are padded SDSS-style: lambda = -1, flux = ivar = 0, mask = False. On read,
padding pixels (lambda <= 0) are dropped from records and masked in the torch Dataset.
An image without inverse variance is stored with ``image_ivar`` all NaN in that row ("unknown"),
which is distinct from ivar = 0 ("no information in this pixel").

Writing is streaming and atomic: each tile is written to ``*.tmp`` and renamed when complete, so a
crash never leaves a half-written file under its final name.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np

from .healpix import healpix_index
from .records import Galaxy, Image, InvalidDataError, Photometry, Spectrum, labels_from_mapping
from .validate import check_rows, check_tile, check_unique_across

__all__ = ["MMUWriter", "write_survey", "tile_path", "find_tiles", "MMUSurvey", "open_survey"]

TILE_FILE = "001-of-001.hdf5"
MAX_OPEN_FILES = 64
CHUNK_BYTES = 64 * 1024
STRING = h5py.string_dtype("utf-8")
IMAGE_COLUMNS = ("image_array", "image_band", "image_ivar", "image_mask", "image_psf_fwhm", "image_scale")
SPECTRUM_COLUMNS = ("spectrum_flux", "spectrum_ivar", "spectrum_lambda", "spectrum_mask", "spectrum_lsf_sigma")
PHOTOMETRY_COLUMNS = ("photometry_flux", "photometry_ivar", "photometry_band")
CORE_COLUMNS = ("object_id", "ra", "dec", "healpix")
ROW_CHECKED = ("ra", "dec", "image_band", "image_ivar", "spectrum_lambda", "spectrum_ivar", "photometry_ivar")
RESERVED = set(IMAGE_COLUMNS + SPECTRUM_COLUMNS + PHOTOMETRY_COLUMNS + CORE_COLUMNS)


def tile_path(root, survey: str, config: str, healpix: int) -> Path:
    return Path(root) / survey / config / f"healpix={int(healpix)}" / TILE_FILE


# ----------------------------------------------------------------------------------------------- write

class _TileWriter:
    """Appends rows to one tile file; columns are created on first use and grown as rows arrive."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(self.tmp, "w")
        self.n = 0

    def _dataset(self, name, sample: np.ndarray, dtype, fill):
        if name in self.file:
            return self.file[name]
        shape = (self.n,) + sample.shape
        # Readers fetch one object at a time (random access from a DataLoader), so a chunk should hold
        # about one row of a big column: a chunk larger than HDF5's 1 MB chunk cache is re-read whole
        # for every row (measured: 23 ms per sample with 4 MB image chunks, 100x slower than memory).
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
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class MMUWriter:
    """Streams validated galaxies into MMU tiles. Use as a context manager; tiles appear on exit.

    >>> with MMUWriter("out", survey="mysurvey") as writer:
    ...     writer.add(galaxies)
    """

    def __init__(self, root, survey: str, config: str = "default", source: str | None = None,
                 buffer_size: int = 256):
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

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            for writer in self._tiles.values():
                writer.abort()
        return False

    def add(self, galaxies: Iterable[Galaxy]) -> None:
        for galaxy in galaxies:
            for modality, count in galaxy.validate(self.source).items():
                self.n_masked[modality] += count
            if galaxy.object_id in self._seen:
                raise InvalidDataError("duplicated object id", source=self.source,
                                       object_id=galaxy.object_id, field="object_id")
            self._seen.add(galaxy.object_id)
            self._check_image_shape(galaxy)
            tile = int(healpix_index(galaxy.ra, galaxy.dec)[0])
            self._buffer[tile].append(galaxy)
            if len(self._buffer[tile]) >= self.buffer_size:
                self._flush(tile)

    def _check_image_shape(self, galaxy: Galaxy):
        if galaxy.image is None:
            return
        key = (galaxy.image.flux.shape, galaxy.image.bands)
        if self._image_shape is None:
            self._image_shape = key
        elif key != self._image_shape:
            raise InvalidDataError(
                f"image shape/bands {key} differ from the survey's {self._image_shape}; the MMU layout keeps "
                f"one image shape per survey config (write it under another --config)",
                source=self.source, object_id=galaxy.object_id, field="image_array")

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
        kinds.update({"spectrum_flux": (np.float32, 0.0), "spectrum_ivar": (np.float32, 0.0),
                      "spectrum_lambda": (np.float64, -1.0), "spectrum_mask": (np.bool_, False),
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
            rows["spectrum_mask"].append(sp.mask)
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
        return sorted(paths)

    @property
    def paths(self) -> list[Path]:
        return sorted(tile_path(self.root, self.survey, self.config, t) for t in self._tiles)


def write_survey(galaxies: Iterable[Galaxy], root, survey: str, config: str = "default",
                 source: str | None = None) -> list[Path]:
    """Write galaxies into the MMU layout under ``root``; returns the tile files written."""
    writer = MMUWriter(root, survey, config, source=source)
    with writer:
        writer.add(galaxies)
    return sorted({tile_path(root, survey, config, int(p.parent.name.split("=")[1]))
                   for p in Path(root, survey, config).glob(f"healpix=*/{TILE_FILE}")})


# ------------------------------------------------------------------------------------------------ read

def find_tiles(path) -> list[Path]:
    """All MMU tile files at or below ``path`` (a tile file, a config folder, a survey folder, a root)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise InvalidDataError("no such file or folder", source=str(path))
    tiles = sorted(p for p in path.rglob("*.hdf5") if not p.name.endswith(".tmp"))
    tiles += sorted(p for p in path.rglob("*.h5") if not p.name.endswith(".tmp"))
    if not tiles:
        raise InvalidDataError("no HDF5 tiles (*.hdf5) found below this folder", source=str(path))
    return tiles


def _decode(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in ("S", "O"):
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()],
                        dtype=object).reshape(arr.shape)
    return arr


class MMUSurvey:
    """Random access to the objects of one or more MMU tiles, without loading the survey into memory.

    Only the small per-object columns (object_id, ra, dec, healpix) are read up front. HDF5 handles are
    opened lazily and re-opened after a fork, so an instance is safe to hand to DataLoader workers.
    """

    def __init__(self, path, tiles: Sequence[Path] | None = None):
        self.path = Path(path)
        self.tiles = list(tiles) if tiles is not None else find_tiles(self.path)
        ids, ra, dec, hp, file_index, row_index = [], [], [], [], [], []
        self._tile_columns: list[set[str]] = []
        for i, tile in enumerate(self.tiles):
            try:
                with h5py.File(tile, "r") as f:
                    ids.append(check_tile(f, str(tile)))  # the shared rules: astroembed.data.validate
                    n = len(ids[-1])
                    ra.append(f["ra"][:].astype(np.float64))
                    dec.append(f["dec"][:].astype(np.float64))
                    hp.append(f["healpix"][:] if "healpix" in f else healpix_index(ra[-1], dec[-1]))
                    cols = sorted(f.keys())
            except OSError as exc:
                raise InvalidDataError(f"cannot be read as HDF5 (empty, truncated or not HDF5: {exc})",
                                       source=str(tile)) from None
            self._tile_columns.append(set(cols))
            file_index.append(np.full(n, i, dtype=np.int32))
            row_index.append(np.arange(n, dtype=np.int64))
        check_unique_across(ids, [str(t) for t in self.tiles])
        self.object_ids = np.concatenate(ids) if ids else np.array([], dtype=str)
        self.ra = np.concatenate(ra) if ra else np.array([])
        self.dec = np.concatenate(dec) if dec else np.array([])
        self.healpix = np.concatenate(hp).astype(np.int64) if hp else np.array([], dtype=np.int64)
        self._file_index = np.concatenate(file_index) if file_index else np.array([], np.int32)
        self._row_index = np.concatenate(row_index) if row_index else np.array([], np.int64)
        # The union: a tile may lack a modality (or a label) that others have.
        self.columns: list[str] = sorted(set().union(*self._tile_columns)) if self.tiles else []
        self._id_to_index: dict[str, int] | None = None
        self._handles: dict[int, h5py.File] = {}
        self._datasets: dict[tuple[int, str], h5py.Dataset] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.object_ids)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_datasets"] = {}
        return state

    @property
    def modalities(self) -> tuple[str, ...]:
        cols = set(self.columns or ())
        return tuple(m for m in ("image", "spectrum", "photometry") if f"{m}_flux" in cols
                     or (m == "image" and "image_array" in cols))

    @property
    def label_columns(self) -> list[str]:
        return [c for c in (self.columns or ()) if c not in RESERVED]

    def _file(self, i: int) -> h5py.File:
        if os.getpid() != self._pid:  # forked into a DataLoader worker: never share HDF5 handles
            self._handles, self._datasets, self._pid = {}, {}, os.getpid()
        handle = self._handles.pop(i, None)
        if handle is None:
            if len(self._handles) >= MAX_OPEN_FILES:  # a survey has thousands of tiles: keep an LRU of handles
                oldest = next(iter(self._handles))
                self._handles.pop(oldest).close()
                self._datasets.clear()  # their Dataset objects die with the file
            try:
                handle = h5py.File(self.tiles[i], "r")
            except OSError as exc:
                raise InvalidDataError(f"cannot be opened as HDF5 ({exc})", source=str(self.tiles[i])) from None
        self._handles[i] = handle  # re-insert: most recently used last
        return handle

    def close(self):
        for h in self._handles.values():
            h.close()
        self._handles, self._datasets = {}, {}

    def index_of(self, object_id) -> int:
        if self._id_to_index is None:
            self._id_to_index = {oid: i for i, oid in enumerate(self.object_ids)}
            if len(self._id_to_index) != len(self.object_ids):
                from .records import check_unique_ids
                check_unique_ids(self.object_ids, source=str(self.path))
        try:
            return self._id_to_index[str(object_id)]
        except KeyError:
            raise InvalidDataError("unknown object id (not in this survey)", source=str(self.path),
                                   object_id=str(object_id), field="object_id") from None

    def read_columns(self, index: int, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Raw column values of one object (no validation): column -> array or scalar."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} objects")
        i = int(self._file_index[index])
        row = int(self._row_index[index])
        out = {}
        for c in columns:
            if c not in self._tile_columns[i]:
                raise InvalidDataError("column not in file", source=str(self.tiles[i]),
                                       object_id=self.object_ids[index], field=c)
            out[c] = self._column(i, c)[row]
        return out

    def _column(self, i: int, name: str) -> h5py.Dataset:
        # h5py's group lookup costs more than reading a row: keep the Dataset objects of open files.
        handle = self._file(i)
        key = (id(handle), name)
        ds = self._datasets.get(key)
        if ds is None:
            if len(self._datasets) > 64 * MAX_OPEN_FILES:
                self._datasets.clear()
            ds = self._datasets[key] = handle[name]
        return ds

    def galaxy(self, index: int) -> Galaxy:
        """The validated Galaxy record of row ``index`` (padding removed, fill values read as absent)."""
        source = str(self.tiles[self._file_index[index]])
        cols = self._tile_columns[self._file_index[index]]
        raw = self.read_columns(index, sorted(cols - {"healpix"}))
        check_rows({c: np.asarray(raw[c])[None] for c in ROW_CHECKED if c in raw}, self.object_ids[index:index + 1],
                   source)  # the rules every read path applies (astroembed.data.validate)
        g = Galaxy(object_id=self.object_ids[index], ra=float(raw["ra"]), dec=float(raw["dec"]))
        if "image_array" in cols:
            bands = tuple(_decode(raw["image_band"]).tolist()) if "image_band" in raw else ()
            if any(bands):
                ivar = raw.get("image_ivar")
                if ivar is not None and np.all(np.isnan(ivar)):
                    ivar = None
                scale = raw.get("image_scale")
                g.image = Image(flux=raw["image_array"], bands=bands, ivar=ivar, mask=raw.get("image_mask"),
                                psf_fwhm=raw.get("image_psf_fwhm"),
                                pixel_scale=float(np.ravel(scale)[0]) if scale is not None else float("nan"))
        if "spectrum_flux" in cols:
            wave = np.asarray(raw["spectrum_lambda"], dtype=np.float64)
            keep = wave > 0
            if keep.any():
                g.spectrum = Spectrum(
                    flux=raw["spectrum_flux"][keep], wavelength=wave[keep],
                    ivar=raw["spectrum_ivar"][keep] if "spectrum_ivar" in raw else None,
                    mask=raw["spectrum_mask"][keep] if "spectrum_mask" in raw else None,
                    lsf_sigma=raw["spectrum_lsf_sigma"][keep] if "spectrum_lsf_sigma" in raw else None)
        if "photometry_flux" in cols:
            bands = tuple(_decode(raw["photometry_band"]).tolist())
            if any(bands) and not np.all(np.isnan(raw["photometry_flux"])):
                g.photometry = Photometry(bands=bands, flux=raw["photometry_flux"],
                                          ivar=raw.get("photometry_ivar"))
        labels = {}
        for name in self.label_columns:
            if name not in raw:
                continue
            value = raw[name]
            if isinstance(value, bytes):
                value = value.decode()
            labels[name] = value
        g.labels = labels_from_mapping(labels)
        g.validate(source)
        return g

    def __getitem__(self, index: int) -> Galaxy:
        return self.galaxy(index)

    def __iter__(self) -> Iterator[Galaxy]:
        for i in range(len(self)):
            yield self.galaxy(i)

    def get(self, object_id) -> Galaxy:
        """The record of ``object_id``; an unknown id raises InvalidDataError naming it."""
        return self.galaxy(self.index_of(object_id))

    def labels(self, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Whole label columns (small, read in one go per tile), in this survey's object order."""
        columns = list(columns) if columns is not None else self.label_columns
        out = {}
        for c in columns:
            if c not in (self.columns or ()):
                raise InvalidDataError(f"no such label column; available: {self.label_columns}",
                                       source=str(self.path), field=c)
            parts = []
            for i in range(len(self.tiles)):
                n = int(np.sum(self._file_index == i))
                if c in self._tile_columns[i]:
                    parts.append(_decode(self._file(i)[c][:]))
                else:  # a tile that never saw this label: missing values
                    parts.append(np.full(n, np.nan))
            out[c] = np.concatenate(parts)
        return out


def open_survey(path) -> MMUSurvey:
    return MMUSurvey(path)
