"""Read Multimodal Universe (MMU) tiles: astroembed's and MMU's own, each column with MMU's meaning.

What each column means, per parent sample, is in :mod:`astroembed.data.mmu_conventions`; this module applies it.
On read, padding pixels (lambda <= 0) are dropped from records; an image without inverse variance is stored
with ``image_ivar`` all NaN in that row ("unknown"), distinct from ivar = 0 ("no information in this pixel").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from .healpix import healpix_index
from .mmu_conventions import (RESERVED, Conventions, good_spectrum_mask, image_ivar_from_stored, image_mask_per_band,
                              lsf_sigma_angstrom, photometry_from_columns, psf_fwhm_or_unknown, tile_conventions)
from .records import Galaxy, Image, InvalidDataError, Photometry, Spectrum, labels_from_mapping
from .validate import check_rows, check_tile, check_unique_across, decode_strings

# Columns whose values every read checks (positions in range, ivar >= 0, band names, wavelengths).
ROW_CHECKED = ("ra", "dec", "image_band", "image_ivar", "spectrum_lambda", "spectrum_ivar", "photometry_ivar")

__all__ = ["find_tiles", "MMUSurvey", "open_survey"]

MAX_OPEN_FILES = 64


def find_tiles(path) -> list[Path]:
    """All MMU tile files at or below ``path`` (a tile file, a config folder, a survey folder, a root)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise InvalidDataError("no such file or folder", source=str(path))
    # writers' temporaries end in .tmp, so these patterns never match them
    tiles = sorted(path.rglob("*.hdf5")) + sorted(path.rglob("*.h5"))
    if not tiles:
        raise InvalidDataError("no HDF5 tiles (*.hdf5) found below this folder", source=str(path))
    return tiles


class MMUSurvey:
    """Random access to the objects of one or more MMU tiles, without loading the survey into memory.

    Only the small per-object columns (object_id, ra, dec, healpix) are read up front. HDF5 handles are
    opened lazily and re-opened after a fork, so an instance is safe to hand to DataLoader workers.

    Parameters
    ----------
    path : a tile file, or a folder holding tiles.
    spectrum_mask : "bad" or "good": what True means in ``spectrum_mask``, for tiles whose origin does not say
        (see :mod:`~astroembed.data.mmu_conventions`); None follows the file and its parent sample.
    lsf_sigma_unit : "Angstrom" or "pixel", overriding the file and its parent sample likewise.
    """

    def __init__(self, path, tiles: Sequence[Path] | None = None, *, spectrum_mask: str | None = None,
                 lsf_sigma_unit: str | None = None):
        self.path = Path(path)
        self.tiles = list(tiles) if tiles is not None else find_tiles(self.path)
        ids, ra, dec, hp, file_index, row_index = [], [], [], [], [], []
        self._tile_columns: list[set[str]] = []
        self.tile_conventions: list[Conventions] = []
        self._array_columns: set[str] = set()
        for i, tile in enumerate(self.tiles):
            try:
                with h5py.File(tile, "r") as f:
                    ids.append(check_tile(f, str(tile)))  # the shared rules: astroembed.data.validate
                    n = len(ids[-1])
                    ra.append(f["ra"][:].astype(np.float64))
                    dec.append(f["dec"][:].astype(np.float64))
                    hp.append(f["healpix"][:] if "healpix" in f else healpix_index(ra[-1], dec[-1]))
                    cols = sorted(f.keys())
                    self._array_columns.update(c for c in cols if c not in RESERVED and f[c].ndim > 1)
                    self.tile_conventions.append(tile_conventions(tile, f, spectrum_mask, lsf_sigma_unit))
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

    def has_photometry(self, tile_index: int) -> bool:
        """Whether a tile holds photometry: astroembed's columns, or its parent sample's catalogue fluxes."""
        cols = self._tile_columns[tile_index]
        mapping = self.tile_conventions[tile_index].photometry
        return "photometry_flux" in cols or (mapping is not None and bool(mapping.columns() & cols))

    @property
    def modalities(self) -> tuple[str, ...]:
        cols = set(self.columns or ())
        found = [m for m in ("image", "spectrum") if f"{m}_flux" in cols or (m == "image" and "image_array" in cols)]
        if any(self.has_photometry(i) for i in range(len(self.tiles))):
            found.append("photometry")
        return tuple(found)

    @property
    def label_columns(self) -> list[str]:
        """Per-object scalar columns (numbers or text) that are not part of a modality."""
        return [c for c in (self.columns or ()) if c not in RESERVED and c not in self._array_columns]

    @property
    def array_columns(self) -> list[str]:
        """Per-object array columns that are not a modality (MMU's ``image_rgb``, ``catalog_*``, ...)."""
        return sorted(self._array_columns)

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

    def indices_of(self, object_ids) -> np.ndarray:
        """Survey rows of ``object_ids``, in their order (an unknown id raises as :meth:`index_of` does)."""
        return np.array([self.index_of(o) for o in object_ids], dtype=np.int64)

    def index_of(self, object_id) -> int:
        if self._id_to_index is None:
            # ids are unique: __init__ checked them across every tile (check_unique_across)
            self._id_to_index = {oid: i for i, oid in enumerate(self.object_ids)}
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

    def conventions(self, index: int) -> Conventions:
        """The column conventions of the tile holding object ``index``."""
        return self.tile_conventions[int(self._file_index[index])]

    def galaxy(self, index: int) -> Galaxy:
        """The validated Galaxy record of row ``index`` (padding removed, fill values read as absent)."""
        tile = int(self._file_index[index])
        source = str(self.tiles[tile])
        cols = self._tile_columns[tile]
        conventions = self.tile_conventions[tile]
        wanted = cols - {"healpix"} - self._array_columns
        if conventions.photometry is not None:  # SDSS keeps its fluxes in an (N, 5) column
            wanted |= conventions.photometry.columns() & cols
        raw = self.read_columns(index, sorted(wanted))
        oid = str(self.object_ids[index])
        check_rows({c: np.asarray(raw[c])[None] for c in ROW_CHECKED if c in raw}, self.object_ids[index:index + 1],
                   source)  # the rules every read path applies (astroembed.data.validate)
        g = Galaxy(object_id=oid, ra=float(raw["ra"]), dec=float(raw["dec"]))
        if "image_array" in cols:
            g.image = image_from_row(raw)
        if "spectrum_flux" in cols:
            g.spectrum = spectrum_from_row(raw, conventions, source=source, object_id=oid)
        if self.has_photometry(tile):
            g.photometry = photometry_from_row(raw, conventions)
        g.labels = labels_from_mapping({name: raw[name] for name in self.label_columns if name in raw})
        g.validate(source)
        return g

    def arrays(self, index: int) -> dict[str, np.ndarray]:
        """The array columns (see :attr:`array_columns`) of object ``index`` that its tile holds."""
        cols = self._tile_columns[int(self._file_index[index])]
        return self.read_columns(index, [c for c in self.array_columns if c in cols])

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
            if c not in self.label_columns:
                raise InvalidDataError(f"no such label column; available: {self.label_columns}",
                                       source=str(self.path), field=c)
            parts = []
            for i in range(len(self.tiles)):
                n = int(np.sum(self._file_index == i))
                if c in self._tile_columns[i]:
                    parts.append(decode_strings(self._file(i)[c][:]))
                else:  # a tile that never saw this label: missing values
                    parts.append(np.full(n, np.nan))
            out[c] = np.concatenate(parts)
        return out


def image_from_row(raw: dict) -> Image | None:
    """The image of one object's raw columns; None when its bands are unnamed (no image, fill values)."""
    bands = tuple(decode_strings(raw["image_band"]).tolist()) if "image_band" in raw else ()
    if not any(bands):
        return None
    ivar = image_ivar_from_stored(raw.get("image_ivar"))
    if ivar is not None and np.all(np.isnan(ivar)):
        ivar = None
    scale = raw.get("image_scale")
    return Image(flux=raw["image_array"], bands=bands, ivar=ivar,
                 mask=image_mask_per_band(raw.get("image_mask"), len(bands)),
                 psf_fwhm=psf_fwhm_or_unknown(raw.get("image_psf_fwhm")),
                 pixel_scale=float(np.ravel(scale)[0]) if scale is not None else float("nan"))


def spectrum_from_row(raw: dict, conventions: Conventions, source=None, object_id=None) -> Spectrum | None:
    """The spectrum of one object's raw columns, padding dropped, mask as True = good, lsf in Angstrom."""
    wave = np.asarray(raw["spectrum_lambda"], dtype=np.float64)
    keep = wave > 0
    if not keep.any():
        return None
    mask = good_spectrum_mask(raw.get("spectrum_mask"), conventions, source=source, object_id=object_id)
    lsf = lsf_sigma_angstrom(raw.get("spectrum_lsf_sigma"), wave, conventions)
    return Spectrum(flux=raw["spectrum_flux"][keep], wavelength=wave[keep],
                    ivar=raw["spectrum_ivar"][keep] if "spectrum_ivar" in raw else None,
                    mask=mask[keep] if mask is not None else None,
                    lsf_sigma=lsf[keep] if lsf is not None else None)


def photometry_from_row(raw: dict, conventions: Conventions) -> Photometry | None:
    """astroembed's photometry columns if present, else the parent sample's catalogue fluxes (nanomaggies)."""
    if "photometry_flux" in raw:
        bands = tuple(decode_strings(raw["photometry_band"]).tolist())
        if not any(bands) or np.all(np.isnan(raw["photometry_flux"])):
            return None
        return Photometry(bands=bands, flux=raw["photometry_flux"], ivar=raw.get("photometry_ivar"))
    if conventions.photometry is None:
        return None
    found = photometry_from_columns(raw, conventions.photometry)
    if found is None:
        return None
    bands, flux, ivar = found
    return Photometry(bands=bands, flux=flux, ivar=ivar)


def open_survey(path, **options) -> MMUSurvey:
    return MMUSurvey(path, **options)
