"""What `astroembed evaluate` reads: feature sets (an embedding catalogue, or feature columns of any
catalogue: photometry is a first-class input) and labels (an MMU survey, a folder of JPEG/PNG cutouts
labelled by sub-folder, or a catalogue), and how the two are joined: by object_id, by row when they are
the same table, or by sky position within a radius.

The raw inputs of the labelled objects (the survey's images and spectra, or the folder's cutouts) travel
in ``LabelTable.extra`` (``"survey"`` or ``"image_folder"``) for the baselines that see the data itself.

Rows whose features are not finite are dropped and counted (``n_dropped``), the documented masking for
catalogues that mark missing magnitudes with NaN; a missing column is an error naming file and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.records import InvalidDataError

__all__ = ["FeatureSet", "LabelTable", "load_features", "load_labels", "join", "read_table", "align", "raw_data",
           "source_order_ids", "FOLDER_LABEL"]

# The label of an image in a folder of cutouts: the name of its first-level sub-folder (spirals/, ...).
FOLDER_LABEL = "class"


@dataclass
class FeatureSet:
    """One representation of a set of objects: row i of ``X`` describes object ``object_ids[i]``."""

    name: str
    object_ids: np.ndarray
    X: np.ndarray
    source: str
    ra: np.ndarray | None = None
    dec: np.ndarray | None = None
    ids_are_rows: bool = False  # the table had no object_id column: ids are row numbers
    n_dropped: int = 0
    transform: object | None = None  # unfitted scikit-learn transformer (e.g. PCA): fitted on training rows only


@dataclass
class LabelTable:
    """Label columns of a set of objects, in the order of ``object_ids``."""

    object_ids: np.ndarray
    columns: dict[str, np.ndarray]
    source: str
    ra: np.ndarray | None = None
    dec: np.ndarray | None = None
    ids_are_rows: bool = False
    extra: dict = field(default_factory=dict)


def _is_survey(path: Path) -> bool:
    return path.suffix in (".hdf5", ".h5") or (path.is_dir() and any(path.rglob("*.hdf5")))


def _is_embedding_catalogue(path: Path) -> bool:
    return path.is_dir() and any(path.rglob("*.parquet"))


def read_table(path, names: list[str] | None = None) -> "astropy.table.Table":  # noqa: F821 - lazy import
    """A catalogue as an astropy Table: FITS, Parquet, CSV, ECSV, or whitespace text whose first line is a
    ``#``-commented header (the MLZ / photo-z codes' format). ``names`` names the columns of a text file
    whose header is missing or wrong (its ``#`` lines are then skipped as comments)."""
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    try:
        if names:
            return Table.read(path, format="ascii.no_header", names=list(names), guess=False, fast_reader=False)
        if path.suffix.lower() in (".fits", ".fit", ".parquet", ".csv", ".ecsv", ".hdf5"):
            return Table.read(path)
        with open(path) as handle:
            first = handle.readline()
        if first.startswith("#"):
            return Table.read(path, format="ascii.commented_header", guess=False, fast_reader=False)
        return Table.read(path, format="ascii")
    except (OSError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidDataError(f"cannot be read as a catalogue ({message}); name the columns of a text file with "
                               "--column-names if its header does not match its rows", source=str(path)) from None


def _ids_and_positions(table, source: str):
    names = {c.lower(): c for c in table.colnames}
    ids = names.get("object_id")
    object_ids = (np.asarray(table[ids]).astype(str) if ids else np.array([f"row{i}" for i in range(len(table))]))
    ra, dec = names.get("ra"), names.get("dec")
    pos = (np.asarray(table[ra], np.float64), np.asarray(table[dec], np.float64)) if ra and dec else (None, None)
    return object_ids, ids is None, pos


def load_features(path, features: list[str] | None = None, name: str | None = None,
                  modality: str | None = None, names: list[str] | None = None) -> FeatureSet:
    """An embedding catalogue folder (``astroembed embed``), or ``features`` columns of a catalogue file."""
    path = Path(path)
    name = name or path.stem
    if features:
        table = read_table(path, names)
        missing = [c for c in features if c not in table.colnames]
        if missing:
            raise InvalidDataError(f"no feature column {missing[0]!r}; the catalogue has {table.colnames}",
                                   source=str(path), field=missing[0])
        X = np.column_stack([np.asarray(table[c], np.float64) for c in features])
        ids, rows, (ra, dec) = _ids_and_positions(table, str(path))
        good = np.isfinite(X).all(1)
        keep = lambda a: None if a is None else a[good]  # noqa: E731
        return FeatureSet(name, ids[good], X[good], str(path), keep(ra), keep(dec), rows, int((~good).sum()))
    if not _is_embedding_catalogue(path):
        raise InvalidDataError("is neither an embedding catalogue folder (Parquet parts from `astroembed "
                               "embed`) nor a catalogue given with --features", source=str(path))
    from ..embed.store import read_embeddings

    ids, ra, dec, X = read_embeddings(path, modality)
    good = np.isfinite(X).all(1)
    return FeatureSet(name, ids[good], X[good].astype(np.float64), str(path), ra[good], dec[good], False,
                      int((~good).sum()))


def raw_data(path) -> dict:
    """The raw inputs at ``path`` for the baselines that see pixels or flux: ``{"survey": MMUSurvey}`` for an
    MMU survey (tile or folder), ``{"image_folder": ImageFolderDataset}`` for a folder of JPEG/PNG cutouts.

    Raises
    ------
    InvalidDataError
        When ``path`` is neither.
    """
    from ..data.readers.image_folder import is_image_folder

    path = Path(path)
    if _is_survey(path):
        from ..data.mmu import MMUSurvey

        return {"survey": MMUSurvey(path)}
    if is_image_folder(path):
        from ..data.folder_dataset import ImageFolderDataset

        return {"image_folder": ImageFolderDataset(path)}
    raise InvalidDataError("is neither an MMU survey nor a folder of JPEG/PNG cutouts (the raw inputs of the "
                           "objects)", source=str(path))


def source_order_ids(extra: dict) -> np.ndarray | None:
    """Object ids of the raw data in its own order (survey rows, sorted image files), or None: the order the
    pretraining stages split in, so :func:`~astroembed.evaluate.probes.held_out_ids` over it holds out the
    objects a model pretrained on that data never saw."""
    if "survey" in extra:
        return extra["survey"].object_ids.astype(str)
    if "image_folder" in extra:
        return extra["image_folder"].object_ids.astype(str)
    return None


def _folder_labels(path: Path, columns: list[str], raw: dict) -> LabelTable:
    """The sub-folder of each image as the label column ``class`` (empty for images at the top level)."""
    folder = raw["image_folder"]
    missing = [c for c in columns if c != FOLDER_LABEL]
    if missing:
        raise InvalidDataError(f"no label column {missing[0]!r}: a folder of cutouts labels each image by its "
                               f"sub-folder, column {FOLDER_LABEL!r} (classes {folder.classes}); give other "
                               "labels as a table with object_id = file name without extension", source=str(path),
                               field=missing[0])
    classes = np.array([folder.classes[i] if i >= 0 else "" for i in folder.labels])
    return LabelTable(folder.object_ids.astype(str), {FOLDER_LABEL: classes}, str(path), extra=raw)


def load_labels(path, columns: list[str], names: list[str] | None = None) -> LabelTable:
    """Label ``columns`` of an MMU survey (tile or folder), a folder of cutouts (column ``class``: the
    sub-folder) or a catalogue file."""
    from ..data.readers.image_folder import is_image_folder

    path = Path(path)
    if _is_survey(path):
        survey = raw_data(path)["survey"]
        return LabelTable(survey.object_ids.astype(str), survey.labels(columns), str(path), survey.ra, survey.dec,
                          extra={"survey": survey})
    if is_image_folder(path):
        return _folder_labels(path, columns, raw_data(path))
    table = read_table(path, names)
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise InvalidDataError(f"no label column {missing[0]!r}; the catalogue has {table.colnames}",
                               source=str(path), field=missing[0])
    ids, rows, (ra, dec) = _ids_and_positions(table, str(path))
    return LabelTable(ids, {c: np.asarray(table[c]) for c in columns}, str(path), ra, dec, rows)


def join(features: FeatureSet, labels: LabelTable, radius_arcsec: float = 1.0) -> tuple[np.ndarray, str]:
    """Indices into ``labels`` of each feature row (-1: no label) and how the join was made.

    Same file: row by row (the rows were dropped together). Otherwise by object_id when both carry ids,
    else by nearest sky position within ``radius_arcsec`` (astropy).
    """
    if Path(features.source).resolve() == Path(labels.source).resolve() and features.ids_are_rows:
        lookup = {oid: i for i, oid in enumerate(labels.object_ids)}
        return np.array([lookup[o] for o in features.object_ids]), "rows"
    if not (features.ids_are_rows or labels.ids_are_rows):
        lookup = {oid: i for i, oid in enumerate(labels.object_ids)}
        index = np.array([lookup.get(o, -1) for o in features.object_ids])
        if (index >= 0).any():
            return index, "object_id"
    if features.ra is None or labels.ra is None:
        raise InvalidDataError("shares no object_id with the labels and one of them has no ra/dec columns to "
                               f"match by position (labels: {labels.source})", source=features.source,
                               field="object_id")
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ours = SkyCoord(features.ra * u.deg, features.dec * u.deg)
    theirs = SkyCoord(labels.ra * u.deg, labels.dec * u.deg)
    nearest, separation, _ = ours.match_to_catalog_sky(theirs)
    index = np.where(separation.arcsec <= radius_arcsec, nearest, -1)
    return index, f"sky position within {radius_arcsec} arcsec"


def align(feature_sets: list[FeatureSet], labels: LabelTable, radius: float) -> tuple[np.ndarray, dict, dict, dict]:
    """Objects present in every feature set and the labels: (sorted ids, X of each set on them, label columns
    on them, a summary of each set's source and join for metrics.json)."""
    rows, summary = {}, {}
    for fs in feature_sets:
        index, how = join(fs, labels, radius)
        rows[fs.name] = {oid: (i, j) for i, (oid, j) in enumerate(zip(fs.object_ids, index)) if j >= 0}
        summary[fs.name] = {"source": fs.source, "dim": int(fs.X.shape[1]), "n_objects": len(fs.object_ids),
                            "n_dropped": fs.n_dropped, "join": how, "n_labelled": len(rows[fs.name])}
    common = sorted(set.intersection(*(set(r) for r in rows.values())))
    if not common:
        raise InvalidDataError("no object is in every feature set and the labels", source=labels.source)
    first = rows[feature_sets[0].name]
    label_rows = np.array([first[o][1] for o in common])
    X = {fs.name: fs.X[[rows[fs.name][o][0] for o in common]] for fs in feature_sets}
    return np.array(common), X, {c: v[label_rows] for c, v in labels.columns.items()}, summary
