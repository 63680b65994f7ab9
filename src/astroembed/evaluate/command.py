"""Paths and strings of the `astroembed evaluate` command turned into a library call.

Baselines are ``NAME=PATH`` (an embedding catalogue, e.g. of the randomly initialised model) or
``NAME=PATH#col1,col2`` (feature columns of a catalogue, e.g. ``photometry=cat.fits#u,g,r,i,z``), or
one of the built-in ``pca_pixels`` / ``pca_flux`` / ``photometry`` computed from the labels' MMU survey
(or from ``data``; ``pca_pixels`` also from a folder of JPEG/PNG cutouts).
"""

from __future__ import annotations

from pathlib import Path

from .inputs import FeatureSet, load_features, load_labels, raw_data, source_order_ids
from .probes import held_out_ids
from .runner import EvaluateOptions, evaluate_embeddings
from .tasks import parse_tasks

__all__ = ["evaluate_paths", "embed_for_evaluation", "parse_baseline", "BUILT_IN_BASELINES"]

BUILT_IN_BASELINES = ("pca_pixels", "pca_flux", "photometry")


def parse_baseline(spec: str) -> tuple[str, Path | None, list[str] | None]:
    """``NAME=PATH[#cols]`` or a built-in name -> (name, path or None, columns or None)."""
    if "=" not in spec:
        if spec not in BUILT_IN_BASELINES:
            raise ValueError(f"baseline {spec!r}: write NAME=PATH or NAME=PATH#col1,col2, or one of "
                             f"{', '.join(BUILT_IN_BASELINES)}")
        return spec, None, None
    name, _, rest = spec.partition("=")
    path, _, cols = rest.partition("#")
    if not name or not path:
        raise ValueError(f"baseline {spec!r}: write NAME=PATH or NAME=PATH#col1,col2")
    return name, Path(path), [c for c in cols.split(",") if c] or None


def _built_in(name: str, labels_path: Path) -> FeatureSet:
    from . import baselines

    return {"pca_pixels": baselines.pca_pixels, "pca_flux": baselines.pca_flux,
            "photometry": baselines.photometry}[name](labels_path)


def embed_for_evaluation(model, data, out, modality: str = "auto") -> Path:
    """Embed the survey (or folder of JPEG/PNG cutouts) ``data`` with ``model`` into ``out/embeddings``
    (resumable) and return that folder."""
    from ..embed.catalog import EmbedConfig, embed_catalog

    return embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(Path(out) / "embeddings"),
                                     modality=modality or "auto", device="auto"), progress=True)


def evaluate_paths(embeddings, labels, tasks: str, out, features: list[str] | None = None, name: str | None = None,
                   baselines: list[str] = (), test_embeddings=None, test_labels=None, modality: str | None = None,
                   options: EvaluateOptions | None = None, report: bool = True,
                   column_names: list[str] | None = None, log=None, data=None) -> dict:
    """Load the inputs named by paths and run :func:`~astroembed.evaluate.runner.evaluate_embeddings`.

    ``labels`` defaults to ``embeddings`` (a catalogue holding its own labels, with ``features``).
    ``data`` is the raw data of the objects (an MMU survey or a folder of JPEG/PNG cutouts) when the labels
    are another table: what the supervised baselines train on. With raw data (as labels or as ``data``),
    the held-out objects are those of the seeded split in the data's own order, the split the pretraining
    stages (``astroembed demo``, the experiments) leave out. ``column_names`` names the columns of the text
    catalogues (main, labels, tests) when their header is wrong.
    """
    task_list = parse_tasks(tasks)
    labels = Path(labels or embeddings)
    columns = sorted({t.target for t in task_list if t.target})
    main = load_features(embeddings, features, name=name or ("features" if features else "embedding"),
                         modality=modality, names=column_names)
    sets, test_sets = [main], None
    for spec in baselines:
        b_name, path, cols = parse_baseline(spec)
        # built-in baselines read the raw data: --data when the labels are another table
        sets.append(_built_in(b_name, Path(data) if data is not None else labels) if path is None
                    else load_features(path, cols, name=b_name, names=column_names if cols else None))
    if test_embeddings is not None:
        if len(sets) > 1:
            raise ValueError("baselines with --test-embeddings are not supported: give one feature set")
        test_sets = [load_features(test_embeddings, features, main.name, modality, column_names)]
    label_table = load_labels(labels, columns, column_names)
    if data is not None and Path(data).resolve() != labels.resolve():
        label_table.extra.update(raw_data(data))
    held_out, order = None, source_order_ids(label_table.extra)
    if order is not None and test_sets is None:
        # The split of `astroembed demo` and the pretraining stages: objects a model was pretrained on are
        # never among the held-out ones.
        options = options or EvaluateOptions()
        held_out = held_out_ids(order, options.test_fraction, options.seed)
    test_label_table = load_labels(test_labels, columns, column_names) if test_labels is not None else None
    if test_sets is not None and test_label_table is None:
        test_label_table = load_labels(test_embeddings, columns, column_names)
    return evaluate_embeddings(sets, label_table, task_list, out, options, test_sets, test_label_table, report,
                               log=log, held_out_ids=held_out)
