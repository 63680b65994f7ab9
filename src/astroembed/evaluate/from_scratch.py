"""The supervised from-scratch baselines inside `astroembed evaluate`: for each raw modality of the labels'
MMU survey (images, spectra), or for the cutouts of a folder of JPEG/PNG images, a network trained on the
labelled training rows only
(:class:`~astroembed.evaluate.supervised.SupervisedBaseline`), scored with the same metrics and bootstrap
intervals on the same held-out rows as the probes, and along the same nested label subsets for the
label-efficiency curve. Each fit has the run's budget (``supervised_steps`` and/or ``supervised_minutes``),
so a curve of F fractions costs about F budgets per modality and task.
"""

from __future__ import annotations

import numpy as np

from ..runtime import resolve_device
from .tasks import PRIMARY_METRIC, label_subsets, probe_kind, score_predictions, task_metrics

__all__ = ["from_scratch_results", "feature_set_name"]


def feature_set_name(modality: str) -> str:
    """How a from-scratch network appears among the feature sets of metrics.json and the report."""
    return f"supervised_{modality}"


def _raw_inputs(data, modality: str, artefacts: dict):
    """``(inputs, bands, image preprocessing or None)`` of every object of the evaluation: images or spectra,
    read once and kept for the other tasks."""
    cache = artefacts.setdefault("raw_inputs", {})
    if modality not in cache:
        from ..preprocess.spectrum import SpectrumPreprocessConfig
        from .raw_inputs import folder_images, survey_images, survey_spectra

        survey = artefacts.get("survey")
        if survey is None:  # a folder of colour cutouts (the runner refuses a run without either)
            cache[modality] = folder_images(artefacts["image_folder"], data.object_ids)
            return cache[modality]
        rows = survey.indices_of(data.object_ids)
        # the demo's spectrum grid (4 A): a CPU-sized input that still resolves galaxy lines
        cache[modality] = ((*survey_images(survey, rows, crop=64), None) if modality == "image"
                           else (survey_spectra(survey, rows, SpectrumPreprocessConfig(wave_step=4.0)), None, None))
    return cache[modality]


def _take(inputs, rows):
    import torch

    rows = torch.as_tensor(rows)
    return {k: v[rows] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[rows]


def modalities_of(options, artefacts: dict) -> list[str]:
    """The modalities asked for, or every raw modality of the labels' survey."""
    from .supervised import MODALITIES

    unknown = [m for m in options.supervised_modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"supervised modality {unknown[0]!r}: choose from {', '.join(MODALITIES)}")
    survey = artefacts.get("survey")
    if survey is None and artefacts.get("image_folder") is not None:  # colour cutouts: images only
        if [m for m in options.supervised_modalities if m != "image"]:
            raise ValueError(f"supervised modalities {list(options.supervised_modalities)}: a folder of cutouts "
                             "has images only")
        return ["image"]
    if options.supervised_modalities:
        return list(options.supervised_modalities)
    return [m for m in ("image", "spectrum") if survey is not None and m in survey.modalities] or ["image"]


def from_scratch_results(kind: str, data, options, artefacts: dict, train, y_train, test, y_test
                         ) -> tuple[dict, dict, dict]:
    """``(results, curves, predictions)`` keyed by :func:`feature_set_name`, in the shapes the probes use:
    ``{"from_scratch": {"metrics", "intervals", "steps", "seconds"}}``, a label-efficiency curve, and the
    held-out predictions."""
    from .supervised import SupervisedBaseline

    results, curves, predictions = {}, {}, {}
    log = artefacts.get("log") or (lambda message: None)
    for modality in modalities_of(options, artefacts):
        inputs, bands, preprocess = _raw_inputs(data, modality, artefacts)

        def fit(rows, modality=modality, inputs=inputs, bands=bands, preprocess=preprocess):
            log(f"  {feature_set_name(modality)}: training from scratch on {len(rows)} labels")
            model = SupervisedBaseline(modality, probe_kind(kind), max_steps=options.supervised_steps or 10 ** 9,
                                       minutes=options.supervised_minutes or None, bands=tuple(bands or ()),
                                       preprocess=preprocess, seed=options.seed,
                                       device=resolve_device(options.device))
            return model.fit(_take(inputs, train[rows]), y_train[rows])

        model = fit(np.arange(len(train)))
        name = feature_set_name(modality)
        entry, predictions[name] = score_predictions(kind, model, _take(inputs, test), y_test,
                                                     options.n_bootstrap, options.seed)
        results[name] = {"from_scratch": {**entry, "steps": model.steps_, "seconds": model.seconds_}}
        if options.label_fractions:
            curves[name] = _curve(kind, fit, _take(inputs, test), y_train, y_test, options,
                                  entry["metrics"][PRIMARY_METRIC[kind][0]])
    return results, curves, {n: {"from_scratch": p} for n, p in predictions.items()}


def _curve(kind, fit, test_inputs, y_train, y_test, options, all_labels_value) -> dict:
    """The primary metric at each label fraction (nested subsets of :func:`label_order`, as the probes')."""
    metric = PRIMARY_METRIC[kind][0]
    curve = {"metric": metric, "fractions": [], "n_labels": [], "values": {"from_scratch": []}}
    for fraction, rows in label_subsets(kind, y_train, options.label_fractions, options.seed):
        value = (all_labels_value if len(rows) == len(y_train)
                 else task_metrics(kind, y_test, fit(rows).predict(test_inputs))[metric])
        curve["fractions"].append(float(fraction))
        curve["n_labels"].append(int(len(rows)))
        curve["values"]["from_scratch"].append(value)
    return curve
