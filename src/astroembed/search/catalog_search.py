"""Similarity search over embedding catalogues, within and across modalities.

An index folder holds one :class:`~astroembed.search.index.VectorIndex` per modality plus a manifest
that remembers where each modality's embedding catalogue (Parquet) and model live:

    INDEX/manifest.json
    INDEX/image/       index.faiss, catalogue.parquet, meta.json
    INDEX/spectrum/    (when built from an aligned model's spectrum embeddings too)
    INDEX/photometry/  (... and its photometry embeddings)

A query is a vector in the *query* modality: the stored embedding of an object id, the object nearest
to a sky position, or a file (FITS / JPEG cutout, SDSS / DESI spectrum, a catalogue row with photometry)
embedded on the fly with the model that made the catalogue. It is searched in the *target* modality's
index; cross-modal search (image -> spectrum, photometry -> image, ... every direction between the
modalities indexed) works when the catalogues come from one aligned (CLIP) model, whose embeddings
share a space.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.records import InvalidDataError
from ..embed.store import read_embeddings, read_metadata
from .index import VectorIndex

MANIFEST = "manifest.json"
POSITION_MATCH_ARCSEC = 2.0  # a --ra/--dec query takes the catalogued object within this radius


def build_index(embeddings: list[str | Path], out, kind: str = "auto", **index_options) -> Path:
    """One index per embedding catalogue (each a modality), saved under ``out`` with a manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"modalities": {}}
    for emb_dir in embeddings:
        meta = read_metadata(emb_dir)
        modality = meta["modality"]
        if modality in manifest["modalities"]:
            raise InvalidDataError(f"two catalogues of modality {modality!r}", source=str(emb_dir),
                                   field="modality")
        ids, ra, dec, vectors = read_embeddings(emb_dir, modality)
        index = VectorIndex(kind=kind, **index_options).fit(
            vectors, ids, ra=ra, dec=dec, modality=modality,
            metadata={"model_name": meta["model_name"], "model_hash": meta["model_hash"]})
        index.save(out / modality)
        manifest["modalities"][modality] = {
            "embeddings": str(Path(emb_dir).resolve()), "model_name": meta["model_name"],
            "model_hash": meta["model_hash"], "model_path": meta.get("model_path"), "kind": index.kind_,
            "count": len(ids), "dim": int(vectors.shape[1])}
    hashes = {m["model_hash"] for m in manifest["modalities"].values()}
    manifest["shared_space"] = len(hashes) == 1  # one (aligned) model made every catalogue
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


@dataclass
class Neighbour:
    object_id: str
    similarity: float
    ra: float
    dec: float
    separation_arcsec: float


class CatalogSearch:
    """Queries against a saved index folder (see module docstring)."""

    def __init__(self, index_dir):
        self.root = Path(index_dir)
        path = self.root / MANIFEST
        if not path.is_file():
            raise InvalidDataError("not an index folder (no manifest.json); build one with `astroembed index`",
                                   source=str(self.root))
        self.manifest = json.loads(path.read_text())
        self._indexes: dict[str, VectorIndex] = {}
        self._catalogues: dict[str, tuple] = {}

    @property
    def modalities(self) -> list[str]:
        return sorted(self.manifest["modalities"])

    def index(self, modality: str) -> VectorIndex:
        self._check_modality(modality)
        if modality not in self._indexes:
            self._indexes[modality] = VectorIndex.load(self.root / modality)
        return self._indexes[modality]

    def _check_modality(self, modality: str) -> None:
        if modality not in self.manifest["modalities"]:
            raise InvalidDataError(f"no {modality!r} index here; it has {self.modalities}", source=str(self.root),
                                   field="modality")

    def catalogue(self, modality: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(object_id, ra, dec, vectors) of one modality's catalogue, sorted by id (read once, cached)."""
        if modality not in self._catalogues:
            self._catalogues[modality] = read_embeddings(self.manifest["modalities"][modality]["embeddings"], modality)
        return self._catalogues[modality]

    def vector_of(self, object_id: str, modality: str) -> tuple[np.ndarray, float, float]:
        ids, ra, dec, vectors = self.catalogue(modality)
        i = np.searchsorted(ids, str(object_id))  # read_embeddings sorts by object_id
        if i >= len(ids) or ids[i] != str(object_id):
            raise InvalidDataError(f"unknown object id (not in the {modality} catalogue)", source=str(self.root),
                                   object_id=str(object_id), field="object_id")
        return vectors[i], float(ra[i]), float(dec[i])

    def object_at(self, ra: float, dec: float, modality: str) -> str:
        """The id of the catalogued object nearest to (ra, dec), within POSITION_MATCH_ARCSEC."""
        from astropy.coordinates import angular_separation

        ids, cat_ra, cat_dec, _ = self.catalogue(modality)
        sep = np.degrees(angular_separation(np.radians(ra), np.radians(dec), np.radians(cat_ra),
                                            np.radians(cat_dec))) * 3600.0
        i = int(np.nanargmin(sep)) if np.isfinite(sep).any() else -1
        if i < 0 or sep[i] > POSITION_MATCH_ARCSEC:
            raise InvalidDataError(f"no {modality} object within {POSITION_MATCH_ARCSEC}\" of "
                                   f"(ra {ra}, dec {dec})", source=str(self.root), field="ra")
        return str(ids[i])

    def embed_file(self, path, modality: str, model=None, bands_as=None) -> tuple[np.ndarray, float, float]:
        """Embed a cutout, spectrum or one-row catalogue file with the catalogue's model (or ``model``).

        The file is read and validated by :func:`astroembed.data.readers.read_any`; its image's band
        names must name the model's bands (``bands_as`` declares others as intended) and its spectrum
        must cover the model's wavelength grid, as for ``astroembed embed``."""
        from ..data.readers import read_any
        from ..inference import load

        model_path = model or self.manifest["modalities"][modality].get("model_path")
        if not model_path or not Path(model_path).exists():
            raise InvalidDataError(f"the model that made the {modality} catalogue is not at {model_path!r}; "
                                   f"pass --model", source=str(self.root), field="model_path")
        embedder = load(model_path)
        galaxies = read_any(path)
        if len(galaxies) != 1:
            raise InvalidDataError(f"a query file must hold one object, this one has {len(galaxies)}",
                                   source=str(path))
        g = galaxies[0]
        if modality == "image":
            if g.image is None:
                raise InvalidDataError("holds no image", source=str(path), field="image_array")
            vector = embedder.embed(g.image.flux[None], bands=g.image.bands, bands_as=bands_as,
                                    object_ids=[g.object_id], source=str(path))[0]
        elif modality == "photometry":
            if g.photometry is None:
                raise InvalidDataError("holds no photometry", source=str(path), field="photometry_flux")
            vector = embedder.embed_photometry(g.photometry.flux[None], g.photometry.ivar[None],
                                               bands=g.photometry.bands, object_ids=[g.object_id],
                                               source=str(path))[0]
        else:
            if g.spectrum is None:
                raise InvalidDataError("holds no spectrum", source=str(path), field="spectrum_flux")
            vector = embedder.embed_spectrum([g.spectrum], object_ids=[g.object_id], source=str(path))[0]
        return vector, g.ra, g.dec

    def search(self, k: int = 10, object_id: str | None = None, ra: float | None = None, dec: float | None = None,
               file=None, query_modality: str | None = None, target_modality: str | None = None,
               exclude_within_arcsec: float | None = None, model=None, bands_as=None) -> list[Neighbour]:
        """Top-k neighbours of one query (exactly one of object_id, (ra, dec), file); ``bands_as``: see
        :meth:`embed_file`."""
        given = [object_id is not None, ra is not None or dec is not None, file is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one query: an object id, a position (ra and dec), or a file")
        query_modality = query_modality or self.modalities[0]
        target_modality = target_modality or query_modality
        self._check_modality(target_modality)
        if query_modality != target_modality and not self.manifest.get("shared_space"):
            raise InvalidDataError("cross-modal search needs catalogues made by one aligned (CLIP) model; these "
                                   "come from different models", source=str(self.root), field="modality")
        exclude_id = None
        if file is not None:
            vector, q_ra, q_dec = self.embed_file(file, query_modality, model, bands_as)
        else:
            self._check_modality(query_modality)
            if object_id is None:
                if ra is None or dec is None:
                    raise ValueError("a position query needs both ra and dec")
                object_id = self.object_at(ra, dec, query_modality)
            vector, q_ra, q_dec = self.vector_of(object_id, query_modality)
            if query_modality == target_modality:
                exclude_id = str(object_id)  # the query itself is not its own neighbour
        position = np.isfinite(q_ra) and np.isfinite(q_dec)
        result = self.index(target_modality).search(
            np.asarray(vector, np.float32)[None], k, exclude_ids=[exclude_id] if exclude_id else None,
            query_ra=[q_ra] if position and exclude_within_arcsec else None,
            query_dec=[q_dec] if position and exclude_within_arcsec else None,
            exclude_within_arcsec=exclude_within_arcsec if position else None)
        out = []
        n = len(result.ids[0])
        n_ras = result.ra[0] if result.ra is not None else np.full(n, np.nan)
        n_decs = result.dec[0] if result.dec is not None else np.full(n, np.nan)
        for oid, sim, n_ra, n_dec in zip(result.ids[0], result.similarity[0], n_ras, n_decs):
            if not oid:
                continue
            sep = _separation_arcsec(q_ra, q_dec, n_ra, n_dec)
            out.append(Neighbour(str(oid), float(sim), float(n_ra), float(n_dec), sep))
        return out


def _separation_arcsec(ra1, dec1, ra2, dec2) -> float:
    if not all(np.isfinite([ra1, dec1, ra2, dec2])):
        return float("nan")
    from astropy.coordinates import angular_separation

    return float(np.degrees(angular_separation(*np.radians([ra1, dec1, ra2, dec2]))) * 3600.0)
