"""What the web app knows about a catalogue, without any web framework: objects, queries, searches, maps.

An :class:`Explorer` wraps one index folder (``astroembed index``) and, when it can be found, the survey
the catalogue was embedded from (MMU tiles, opened read-only). Every request-facing method takes object
ids, numbers and bytes, never a path: ids are looked up in the index's own tables, so nothing a client
sends can name a file.

Target modality "both" ranks candidates by the mean of their image and spectrum cosine similarities to
the query (both computed exactly from the stored vectors); query modality "both" uses the normalised
sum of the object's image and spectrum vectors. Both need one aligned (CLIP) space.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.records import InvalidDataError
from ..data.validate import check_wavelength_coverage
from ..search.catalog_search import CatalogSearch

__all__ = ["Explorer", "NotFoundError", "Hit", "MODALITY_CHOICES", "MAX_K", "MAX_CONE_ARCSEC", "check_k",
           "check_spectrum_coverage"]

MODALITY_CHOICES = ("image", "spectrum", "both")
MAX_K = 100
MAX_CONE_ARCSEC = 180 * 3600.0  # the whole sky: the cost is O(N) whatever the radius; `limit` bounds the answer
_CANDIDATE_FACTOR = 4  # "both" targets: candidates fetched from each index per neighbour wanted


class NotFoundError(InvalidDataError):
    """An object id, label or upload key the catalogue does not have (the app answers 404)."""


@dataclass
class Hit:
    """One neighbour as the API returns it."""

    rank: int
    object_id: str
    similarity: float
    ra: float
    dec: float
    separation_arcsec: float


class Explorer:
    """Read-only access to an index folder and its survey for the web app.

    Parameters
    ----------
    index_dir : folder written by ``astroembed index`` (manifest.json + one folder per modality).
    data : the survey (MMU tile or folder of tiles) for thumbnails, spectra and labels; default: the
        tiles the embedding catalogues were made from, when they still exist. None of it is required:
        without a survey the app searches and lists objects but shows no pictures.
    """

    def __init__(self, index_dir, data=None):
        self.search_engine = CatalogSearch(index_dir)
        self.root = self.search_engine.root
        self.modalities = self.search_engine.modalities
        self.shared_space = bool(self.search_engine.manifest.get("shared_space"))
        self.ids, self.ra, self.dec = self._all_objects()
        self._row = {oid: i for i, oid in enumerate(self.ids.tolist())}
        self.survey = _open_survey(data, self.search_engine)
        self._survey_lock = threading.Lock()  # h5py handles and the survey's LRU are not thread-safe
        self._embed_lock = threading.Lock()
        self._embedders: dict[str, object] = {}
        # one modality: its index rows are the object rows (no second id table for a big catalogue)
        self._rows_by_modality: dict[str, dict[str, int]] = (
            {self.modalities[0]: self._row} if len(self.modalities) == 1 else {})

    # ------------------------------------------------------------------ objects
    def _all_objects(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, ra, dec) of every object in any modality's index, first seen first (a survey may have
        spectra of only some of its imaged galaxies: those are objects too)."""
        ids, ra, dec = [], [], []
        for m in self.modalities:
            index = self.search_engine.index(m)
            n = len(index.ids_)
            ids.append(np.asarray(index.ids_))
            ra.append(index.ra_ if index.ra_ is not None else np.full(n, np.nan))
            dec.append(index.dec_ if index.dec_ is not None else np.full(n, np.nan))
        ids, ra, dec = np.concatenate(ids), np.concatenate(ra), np.concatenate(dec)
        if len(self.modalities) == 1:
            return ids, ra, dec
        keep = np.sort(np.unique(ids, return_index=True)[1])
        return ids[keep], ra[keep], dec[keep]

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, object_id: str) -> int:
        row = self._row.get(str(object_id))
        if row is None:
            raise NotFoundError("unknown object id (not in this catalogue)", object_id=str(object_id),
                                field="object_id")
        return row

    def object_info(self, object_id: str) -> dict:
        """Id, position, the modalities it has in the index, its labels (from the survey)."""
        row = self.row_of(object_id)
        have = [m for m in self.modalities if str(object_id) in self._index_rows(m)]
        info = {"object_id": str(object_id), "ra": _finite(self.ra[row]), "dec": _finite(self.dec[row]),
                "modalities": have, "labels": {}, "has_image": False, "has_spectrum": False}
        galaxy = self.galaxy(object_id)
        if galaxy is not None:
            info["labels"] = {k: json_value(v) for k, v in galaxy.labels.items()}
            info["has_image"], info["has_spectrum"] = galaxy.image is not None, galaxy.spectrum is not None
        return info

    def _index_rows(self, modality: str) -> dict[str, int]:
        """object id -> row of ``modality``'s index (built once per modality)."""
        rows = self._rows_by_modality.get(modality)
        if rows is None:
            ids = self.search_engine.index(modality).ids_.tolist()
            rows = self._rows_by_modality[modality] = {oid: i for i, oid in enumerate(ids)}
        return rows

    def galaxy(self, object_id: str):
        """The survey record of ``object_id`` (validated), or None without a survey or when it lacks it."""
        if self.survey is None:
            return None
        with self._survey_lock:
            try:
                return self.survey.get(str(object_id))
            except InvalidDataError:
                return None

    def random_id(self, rng: np.random.Generator | None = None) -> str:
        rng = rng or np.random.default_rng()
        return str(self.ids[int(rng.integers(len(self.ids)))])

    def cone(self, ra: float, dec: float, radius_arcsec: float, limit: int = 100) -> list[dict]:
        """Catalogue objects within ``radius_arcsec`` of (ra, dec), nearest first."""
        from astropy.coordinates import angular_separation

        if not 0 < radius_arcsec <= MAX_CONE_ARCSEC:
            raise InvalidDataError(f"radius must be in (0, {MAX_CONE_ARCSEC:g}] arcsec, got {radius_arcsec:g}",
                                   field="radius_arcsec")
        sep = np.degrees(angular_separation(np.radians(ra), np.radians(dec), np.radians(self.ra),
                                            np.radians(self.dec))) * 3600.0
        inside = np.flatnonzero(np.nan_to_num(sep, nan=np.inf) <= radius_arcsec)
        order = inside[np.argsort(sep[inside], kind="stable")][:limit]
        return [{"object_id": str(self.ids[i]), "ra": float(self.ra[i]), "dec": float(self.dec[i]),
                 "separation_arcsec": float(sep[i])} for i in order]

    # ------------------------------------------------------------------ search
    def check_modalities(self, query_modality: str, target_modality: str) -> None:
        for name, value in (("query_modality", query_modality), ("target_modality", target_modality)):
            if value not in MODALITY_CHOICES:
                raise InvalidDataError(f"must be one of {list(MODALITY_CHOICES)}, got {value!r}", field=name)
            available = len(self.modalities) >= 2 if value == "both" else value in self.modalities
            if not available:
                raise InvalidDataError(f"this catalogue has no {value} index (it has {self.modalities})",
                                       field=name)
        if (query_modality != target_modality or "both" in (query_modality, target_modality)) \
                and not self.shared_space:
            raise InvalidDataError("cross-modal search needs catalogues made by one aligned (CLIP) model",
                                   field="target_modality")

    def vector_of(self, object_id: str, modality: str) -> np.ndarray:
        """The stored (unit) query vector of a catalogued object in ``modality`` ("both": mean direction)."""
        self.row_of(object_id)
        parts = list(self.modalities) if modality == "both" else [modality]
        vectors = []
        for m in parts:
            if str(object_id) not in self._index_rows(m):
                raise NotFoundError(f"has no {m} embedding", object_id=str(object_id), field=f"embedding_{m}")
            vectors.append(_unit(self.search_engine.vector_of(object_id, m)[0]))
        return _unit(np.sum(vectors, axis=0))

    def neighbours(self, vector: np.ndarray, target_modality: str, k: int, query_ra: float = np.nan,
                   query_dec: float = np.nan, exclude_id: str | None = None,
                   exclude_within_arcsec: float | None = None) -> list[Hit]:
        """Top-k neighbours of a query vector in the target modality ("both": mean of the two cosines)."""
        if k < 1:
            raise InvalidDataError(f"k must be >= 1, got {k}", field="k")
        if exclude_within_arcsec is not None and not exclude_within_arcsec >= 0:
            raise InvalidDataError(f"must be >= 0, got {exclude_within_arcsec}", field="exclude_within_arcsec")
        position = bool(np.isfinite(query_ra) and np.isfinite(query_dec))
        radius = exclude_within_arcsec if position and exclude_within_arcsec else None
        targets = list(self.modalities) if target_modality == "both" else [target_modality]
        fetch = k * _CANDIDATE_FACTOR if len(targets) > 1 else k
        candidates: dict[str, float] = {}
        for m in targets:
            result = self.search_engine.index(m).search(
                np.asarray(vector, np.float32)[None], fetch, exclude_ids=[exclude_id] if exclude_id else None,
                query_ra=[query_ra] if radius else None, query_dec=[query_dec] if radius else None,
                exclude_within_arcsec=radius)
            for oid, sim in zip(result.ids[0], result.similarity[0]):
                if oid:
                    candidates[str(oid)] = float(sim)
        if len(targets) > 1:
            candidates = {oid: self._mean_similarity(vector, oid) for oid in candidates}
        best = sorted(candidates.items(), key=lambda item: -item[1])[:k]
        rows = [self._row.get(oid) for oid, _ in best]
        ra = np.array([self.ra[r] if r is not None else np.nan for r in rows], np.float64)
        dec = np.array([self.dec[r] if r is not None else np.nan for r in rows], np.float64)
        separation = _separations_arcsec(query_ra, query_dec, ra, dec)  # one vectorised call per query
        return [Hit(i + 1, oid, sim, float(ra[i]), float(dec[i]), float(separation[i]))
                for i, (oid, sim) in enumerate(best)]

    def _mean_similarity(self, vector: np.ndarray, object_id: str) -> float:
        q = _unit(vector)
        sims = [float(q @ _unit(self.search_engine.vector_of(object_id, m)[0])) for m in self.modalities
                if object_id in self._index_rows(m)]
        return float(np.mean(sims)) if len(sims) == len(self.modalities) else -1.0

    def search_object(self, object_id: str, query_modality: str, target_modality: str, k: int,
                      exclude_within_arcsec: float | None = None) -> list[Hit]:
        """More like a catalogued object (never listed itself: in another modality it is its own best match)."""
        check_k(k)
        self.check_modalities(query_modality, target_modality)
        vector = self.vector_of(object_id, query_modality)
        row = self.row_of(object_id)
        same = query_modality == target_modality and query_modality != "both"
        hits = self.neighbours(vector, target_modality, k + (0 if same else 1), float(self.ra[row]),
                               float(self.dec[row]), exclude_id=str(object_id) if same else None,
                               exclude_within_arcsec=exclude_within_arcsec)
        if not same:  # "both" and cross-modal: the object's own other modality is not news either
            hits = [h for h in hits if h.object_id != str(object_id)][:k]
            hits = [Hit(i, h.object_id, h.similarity, h.ra, h.dec, h.separation_arcsec)
                    for i, h in enumerate(hits, 1)]
        return hits

    # ------------------------------------------------------------------ models (for uploads)
    def embedder(self, modality: str):
        """The model that made ``modality``'s catalogue (loaded once; safetensors, never pickle)."""
        from ..inference import load

        info = self.search_engine.manifest["modalities"].get(modality)
        if info is None:
            raise InvalidDataError(f"this catalogue has no {modality} index (it has {self.modalities})",
                                   field="modality")
        if modality not in self._embedders:
            path = info.get("model_path")
            if not path or not Path(path).exists():
                raise InvalidDataError(f"the model that made the {modality} catalogue is not available on the "
                                       "server, so uploads cannot be embedded", field="model_path")
            self._embedders[modality] = load(path)
        return self._embedders[modality]

    def embed_galaxy(self, galaxy, modality: str) -> np.ndarray:
        """A unit vector for an uploaded record, in ``modality`` (image or spectrum)."""
        if modality not in ("image", "spectrum"):
            raise InvalidDataError(f"an upload is an image or a spectrum, got {modality!r}", field="modality")
        model = self.embedder(modality)
        try:
            with self._embed_lock:  # one forward pass at a time: torch already uses every core
                if modality == "image":
                    if galaxy.image is None:
                        raise InvalidDataError("the file holds no image", field="image_array")
                    vector = model.embed(galaxy.image.flux[None], **_band_check(model, galaxy.image))[0]
                else:
                    if galaxy.spectrum is None:
                        raise InvalidDataError("the file holds no spectrum", field="spectrum_flux")
                    check_spectrum_coverage(galaxy.spectrum, getattr(model, "spectrum_preprocess_config", None)
                                            or model.preprocess_config, galaxy.object_id)
                    vector = model.embed_spectrum([galaxy.spectrum])[0]
        except RuntimeError as exc:  # a shape the network cannot take: say so, not a torch traceback
            raise InvalidDataError(f"the model cannot embed this {modality} ({str(exc).splitlines()[0]})",
                                   field="image_array" if modality == "image" else "spectrum_flux") from None
        return _unit(vector)

    def image_preprocessing(self):
        """The catalogue model's image preprocessing (for colour composites), read from its config.json."""
        import json

        from ..preprocess.image import PreprocessConfig

        info = self.search_engine.manifest["modalities"].get("image", {})
        path = Path(info.get("model_path") or "") / "config.json"
        if info.get("model_path") and path.is_file():
            pre = json.loads(path.read_text()).get("preprocessing", {})
            pre = pre.get("image", pre)
            try:
                return PreprocessConfig.from_dict(pre)
            except (TypeError, ValueError, KeyError):
                pass  # an unreadable config: fall back to the viewer's default scales
        return PreprocessConfig()

    def summary(self) -> dict:
        return {"count": len(self), "example_id": str(self.ids[0]), "modalities": self.modalities,
                "shared_space": self.shared_space,
                "has_survey": self.survey is not None,
                "labels": self.survey.label_columns if self.survey is not None else [],
                "models": {m: self.search_engine.manifest["modalities"][m].get("model_name")
                           for m in self.modalities}}


def check_k(k: int) -> int:
    """The number of neighbours a client may ask for: 1 to MAX_K."""
    if not 1 <= k <= MAX_K:
        raise InvalidDataError(f"k must be between 1 and {MAX_K}, got {k}", field="k")
    return k


def _band_check(model, image) -> dict:
    """The embedder's own band check for an uploaded cutout: its planes are named, so a file in other
    bands (R,G,B pixel values read as g,r,z flux would embed as garbage) is refused naming both lists.
    An RGB model takes its three planes as they are."""
    pre = getattr(model, "preprocess_config", None)
    if pre is not None and pre.mode == "rgb":
        return {}
    return {"bands": tuple(image.bands)}


def check_spectrum_coverage(spectrum, config, object_id=None) -> None:
    """Refuse a spectrum whose VALID pixels (finite flux, ivar > 0, mask good) cover too little of the
    model's wavelength range: the library's rule (:func:`~astroembed.data.validate.check_wavelength_coverage`,
    same threshold, same unit guesses), applied to the valid pixels only, because outside them the model
    sees masked padding and an upload would embed as a vector that looks like any other and means nothing."""
    wave = np.asarray(spectrum.wavelength, np.float64)
    good = np.isfinite(np.asarray(spectrum.flux, np.float64))
    if spectrum.ivar is not None:
        good &= np.asarray(spectrum.ivar) > 0
    if spectrum.mask is not None:
        good &= np.asarray(spectrum.mask, bool)
    if not good.any():
        raise InvalidDataError("the spectrum has no valid pixel (finite flux with ivar > 0)", field="spectrum_ivar")
    check_wavelength_coverage(wave[good], (float(config.wave_min), float(config.wave_max)),
                              object_ids=None if object_id is None else [object_id])


def hits_as_dicts(hits: list[Hit]) -> list[dict]:
    return [{k: json_value(v) for k, v in asdict(h).items()} for h in hits]


def _open_survey(data, engine: CatalogSearch):
    from ..data.mmu import MMUSurvey

    if data is not None:
        return MMUSurvey(data)
    from ..embed.store import read_metadata

    for info in engine.manifest["modalities"].values():
        try:
            tiles = [Path(t) for t in read_metadata(info["embeddings"])["source_tiles"] if t]
        except (InvalidDataError, OSError):
            continue
        if tiles and all(t.is_file() for t in tiles):
            return MMUSurvey(tiles[0].parent, tiles=sorted(set(tiles)))
    return None


def _separations_arcsec(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Angular separations (arcsec) of (ra, dec) arrays from one point; NaN where a position is unknown."""
    from astropy.coordinates import angular_separation

    if not (np.isfinite(ra0) and np.isfinite(dec0)):
        return np.full(len(ra), np.nan)
    with np.errstate(invalid="ignore"):
        return np.degrees(angular_separation(np.radians(ra0), np.radians(dec0), np.radians(ra),
                                             np.radians(dec))) * 3600.0


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0:
        raise InvalidDataError("the embedding is zero or not finite", field="embedding")
    return v / norm


def _finite(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def json_value(v):
    """numpy scalars -> Python; NaN -> None (JSON has no NaN)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v
