"""The main job (`astroembed demo`, run by `make demo`): every stage that exists, on the built-in survey.

Each stage writes into its own folder under ``out`` and is skipped (or resumed) when its output is
already there, so an interrupted demo picks up where it stopped:

    out/survey/        the built-in survey (MMU layout)
    out/image/         image pretraining run; out/image/model is the exported encoder
    out/spectrum/      spectrum masked-modelling run
    out/clip/          image-spectrum(-photometry) alignment run
    out/embeddings/    embedding catalogues (Parquet, one part per tile)
    out/index/         vector indexes (faiss) of the aligned embeddings
    out/report/        `astroembed evaluate` on those embeddings: metrics.json, report.html and its PNGs

The stage functions are also what the experiments in ``experiments/`` call, with larger budgets.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console

SURVEY = "astroembed_sim"
TEST_FRACTION = 0.3


class DemoFolderError(ValueError):
    """The demo's output folder holds something the demo must not overwrite or delete."""


STAGE_OUTPUTS = ("image", "image_random_init", "spectrum", "clip", "spectrum_decoder", "embeddings", "index",
                 "report", "predicted_spectra.png", "results.json")
# The built-in survey's physical properties the report probes (AstroCLIP's table: redshift, stellar mass,
# metallicity and a star-formation measure; see `astroembed info` for every label).
REPORT_LABELS = ("redshift", "log_stellar_mass", "metallicity", "sfr_300myr_fraction")

RENDERING = "RENDERING.json"  # written before the survey is rendered, removed when it is complete


def build_survey(out: Path, n: int, seed: int, console: Console) -> Path:
    """Render the built-in survey, or reuse the one already rendered with the same ``n`` and ``seed``.

    Nothing the demo did not create is deleted: a survey folder rendered with other settings, or one
    the demo did not write, is an error (every later stage's models and results belong to that survey).
    Only the demo's own interrupted render (marked by ``RENDERING.json``) is removed and redone.

    Raises
    ------
    DemoFolderError
        If ``out`` holds a demo built with other settings, a ``survey`` folder the demo did not write,
        or stage results without their survey.
    """
    from .data.simulate import simulate_survey

    root = out / "survey"
    stamp = root / "DONE.json"
    wanted = {"n": n, "seed": seed}
    if stamp.exists():
        built = json.loads(stamp.read_text())
        if built == wanted:
            console.print(f"[green]survey[/]: already built at {root} ({n} galaxies, seed {seed})")
            return root / SURVEY / "default"
        raise DemoFolderError(
            f"{out} holds a demo built with n={built.get('n')}, seed={built.get('seed')} (asked: n={n}, "
            f"seed={seed}); its models and results belong to that survey. Rerun with those settings, choose "
            f"another --out, or delete {out} yourself to start over")
    if root.exists():
        if not (root / RENDERING).is_file():
            raise DemoFolderError(f"{root} exists and was not written by the demo; choose another --out")
        import shutil

        shutil.rmtree(root)  # the demo's own render, interrupted: nothing else lives there
    else:
        leftovers = [name for name in STAGE_OUTPUTS if (out / name).exists()]
        if leftovers:
            raise DemoFolderError(f"{out} holds results of an earlier run ({', '.join(leftovers)}) but not the "
                                  f"survey they came from; choose another --out, or delete them yourself")
    root.mkdir(parents=True)
    (root / RENDERING).write_text(json.dumps(wanted))
    t0 = time.perf_counter()
    simulate_survey(n=n, seed=seed, out=root, progress=True)
    stamp.write_text(json.dumps(wanted))
    (root / RENDERING).unlink()
    console.print(f"[green]survey[/]: rendered {n} galaxies in {time.perf_counter() - t0:.0f} s -> {root}")
    return root / SURVEY / "default"


def _tiles_fingerprint(survey_path: Path) -> tuple:
    from .data.mmu import find_tiles

    return tuple((str(t), t.stat().st_mtime_ns, t.stat().st_size) for t in find_tiles(survey_path))


@functools.lru_cache(maxsize=4)
def _survey_ids_and_redshifts(survey_path: str, fingerprint: tuple) -> tuple[np.ndarray, np.ndarray]:
    # Opening the survey validates every tile (seconds for the built-in survey), and every stage and
    # report needs the same ids and redshifts: read once per survey state (the fingerprint of its tiles'
    # names, sizes and times makes a rewritten survey a new key).
    from .data.mmu import MMUSurvey

    survey = MMUSurvey(survey_path)
    ids, z = survey.object_ids.copy(), survey.labels(["redshift"])["redshift"].astype(np.float64)
    ids.flags.writeable = z.flags.writeable = False  # shared by every caller: read-only
    return ids, z


def _survey_table(survey_path: Path) -> tuple[np.ndarray, np.ndarray]:
    return _survey_ids_and_redshifts(str(survey_path), _tiles_fingerprint(survey_path))


def held_out_split(survey_path: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object_ids in survey order, train indices, test indices): the split every stage and report uses."""
    from .evaluate.probes import split_indices

    ids, _ = _survey_table(survey_path)
    train, test = split_indices(len(ids), TEST_FRACTION, seed)
    return ids, train, test


def train_on_split(config_cls, run_stage, config_name: str, survey_path: Path, run_dir: Path, minutes: float,
                   seed: int, settings: dict | None = None, batch_size: int | None = None,
                   max_steps: int | None = None) -> Path:
    """Run a pretraining stage on the training split, unless its model is already exported.

    Training stops at ``minutes`` of wall time or ``max_steps`` steps, whichever comes first (a step budget
    makes a run reproducible on a busy machine, where a time budget buys a varying number of steps).

    Parameters
    ----------
    config_cls, run_stage
        The stage's config class and its run function (e.g. ``ImagePretrainConfig``, ``pretrain_image``).
    config_name
        The shipped config (``astroembed/configs/<name>.yaml``) the stage starts from.
    settings
        Dotted overrides of that config (``{"encoder.arch": "resnet18"}``).
    batch_size
        Overrides the config's batch size; tiny surveys (tests) get at most a quarter of the split.
    """
    from .config import load_yaml_config

    model_dir = run_dir / "model"
    if (model_dir / "model.safetensors").exists():
        return model_dir
    _, train, _ = held_out_split(survey_path, seed)
    config = load_yaml_config(config_cls, config_name, {
        **(settings or {}), "data": str(survey_path), "out": str(run_dir), "train_indices": train.tolist(),
        "run.max_minutes": minutes, "run.seed": seed, "run.batch_size": batch_size,
        "run.max_steps": max_steps})
    config.run.batch_size = min(config.run.batch_size, max(2, len(train) // 4))
    return run_stage(config)


def pretrain_image_stage(survey_path: Path, run_dir: Path, minutes: float, seed: int = 0,
                         arch: str = "small_cnn", method: str = "simclr", batch_size: int | None = None,
                         max_steps: int | None = None) -> Path:
    """Self-supervised image pretraining on the training split (the held-out galaxies are never seen)."""
    from .train.image import ImagePretrainConfig, pretrain_image

    return train_on_split(ImagePretrainConfig, pretrain_image, "image_simclr_demo", survey_path, run_dir, minutes,
                          seed, {"method": method, "encoder.arch": arch}, batch_size, max_steps)


def random_init_model(model_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    """The same architecture and preprocessing as ``model_dir``, randomly initialised: the baseline."""
    import torch

    from .models.io import build_from_config, load_state, save_model

    if (out_dir / "model.safetensors").exists():
        return out_dir
    config, _ = load_state(model_dir)
    torch.manual_seed(seed)
    return save_model(build_from_config(config), {**config, "training": {"method": "random_init"}}, out_dir)


def embed_stage(model_dir: Path, survey_path: Path, out: Path, modality: str = "image") -> Path:
    from .embed.catalog import EmbedConfig, embed_catalog

    return embed_catalog(EmbedConfig(model=str(model_dir), data=str(survey_path), out=str(out),
                                     modality=modality, device="auto", batch_size=256), progress=True)


def survey_redshifts(survey_path: Path) -> np.ndarray:
    """The built-in survey's spectroscopic redshifts, in survey order."""
    return _survey_table(survey_path)[1]


def redshift_report(embeddings_dir: Path, survey_path: Path, seed: int = 0, modality: str | None = None) -> dict:
    """k-NN (k=16) redshift of held-out galaxies from the training galaxies' embeddings."""
    from .embed.store import read_embeddings
    from .evaluate.redshift import knn_redshift_report

    survey_ids, train, test = held_out_split(survey_path, seed)
    z = survey_redshifts(survey_path)
    _, _, _, vectors = read_embeddings(embeddings_dir, modality, object_ids=survey_ids)
    return knn_redshift_report(vectors[train], z[train], vectors[test], z[test], k=16)


def pretrain_spectrum_stage(survey_path: Path, run_dir: Path, minutes: float, seed: int = 0,
                            settings: dict | None = None, batch_size: int | None = None,
                            max_steps: int | None = None) -> Path:
    """Masked-modelling pretraining of the spectrum transformer on the training split.

    ``settings`` are dotted overrides of the shipped ``spectrum_masked_demo`` config.
    """
    from .train.spectrum import SpectrumPretrainConfig, pretrain_spectrum

    return train_on_split(SpectrumPretrainConfig, pretrain_spectrum, "spectrum_masked_demo", survey_path, run_dir,
                          minutes, seed, settings, batch_size, max_steps)


def pretrain_clip_stage(image_model: Path, spectrum_model: Path, survey_path: Path, run_dir: Path,
                        minutes: float, seed: int = 0, batch_size: int | None = None,
                        max_steps: int | None = None, settings: dict | None = None,
                        init_heads: Path | None = None) -> Path:
    """AstroCLIP alignment of the two pretrained encoders on the training split, end to end (both
    fine-tuned unless ``settings`` freeze them; ``settings`` are dotted overrides of ``clip_demo``),
    starting from the projection heads of the aligned export ``init_heads`` when given."""
    from .train.clip import CLIPConfig, pretrain_clip

    run = functools.partial(pretrain_clip, init_heads=init_heads)
    return train_on_split(CLIPConfig, run, "clip_demo", survey_path, run_dir, minutes, seed,
                          {**(settings or {}), "image_model": str(image_model), "spectrum_model": str(spectrum_model)},
                          batch_size, max_steps)


def align_frozen_stage(image_model: Path, spectrum_model: Path, survey_path: Path, run_dir: Path, seed: int = 0,
                       settings: dict | None = None) -> Path:
    """Align the two pretrained encoders on the training split by training heads on their frozen features
    (:mod:`astroembed.train.clip_frozen`; ``settings`` are dotted overrides of ``align_frozen_demo``).
    Its budget is epochs, not minutes: the encoders run once per cached view, the heads train in seconds."""
    from .config import load_yaml_config
    from .train.clip_frozen import FrozenAlignConfig, align_frozen

    if (run_dir / "model" / "model.safetensors").exists():
        return run_dir / "model"
    _, train, _ = held_out_split(survey_path, seed)
    config = load_yaml_config(FrozenAlignConfig, "align_frozen_demo", {
        **(settings or {}), "image_model": str(image_model), "spectrum_model": str(spectrum_model),
        "data": str(survey_path), "out": str(run_dir), "train_indices": train.tolist(), "seed": seed})
    return align_frozen(config)


def predicted_spectra_stage(clip_model: Path, survey_path: Path, run_dir: Path, figure: Path, seed: int = 0,
                            k: int = 10) -> dict:
    """Spectra predicted from images: train the decoder (``decoder_cpu``) on the training split's shared-space
    vectors, then score it on the held-out galaxies by median chi^2/dof against the observed spectra (with
    their ivar) beside the k-NN-mean baseline (the mean spectrum of the k nearest training galaxies in the
    shared space), and draw five held-out galaxies, seeded, predicted over observed (``figure``)."""
    from .config import load_yaml_config
    from .evaluate.spectrum_prediction import chi2_per_dof, galaxy_table, knn_mean_spectrum, plot_prediction
    from .inference import load
    from .models.spectrum_decoder import DECODER_FOLDER
    from .train.spectrum_decoder import SpectrumDecoderConfig, cached_table, train_spectrum_decoder

    _, train, test = held_out_split(survey_path, seed)
    config = load_yaml_config(SpectrumDecoderConfig, "decoder_cpu", {
        "model": str(clip_model), "data": str(survey_path), "out": str(run_dir), "train_indices": train.tolist(),
        "seed": seed})
    if not (Path(clip_model) / DECODER_FOLDER).is_dir():
        train_spectrum_decoder(config)
    embedder = load(clip_model)
    reference = cached_table(embedder, config, run_dir / "training_set.npz")  # written by the training above
    held_out = galaxy_table(embedder, survey_path, test)
    grid, shape = embedder.decode_spectrum(held_out["vector"], normalised=True)
    observed = (held_out["flux"], held_out["ivar"], held_out["valid"])
    chi2 = {"decoder": chi2_per_dof(shape, *observed),
            "knn_mean": chi2_per_dof(knn_mean_spectrum(reference, held_out["vector"], k)[0], *observed)}
    path, shown = plot_prediction(grid, held_out["flux"], held_out["valid"], shape, figure, held_out["object_id"],
                                  held_out.get("redshift"), n=5, seed=seed)
    return {"n_held_out": int(len(test)), "k": k, "figure": str(path),
            "objects_shown": [str(i) for i in held_out["object_id"][shown]],
            "chi2_per_dof_median": {name: float(np.nanmedian(v)) for name, v in chi2.items()}}


def reconstruction_stage(spectrum_model: Path, survey_path: Path, seed: int = 0, n: int = 256,
                         chunk_len: int | None = None) -> dict:
    """Masked-chunk reconstruction of held-out spectra: the model vs linear interpolation.

    The chunks are those the model was trained with (its mask fraction and chunk length) unless
    ``chunk_len`` asks for another length.
    """
    from .data.dataset import MMUDataset
    from .evaluate.reconstruction import reconstruction_report
    from .inference import load
    from .preprocess.stored import prepare_stored_spectra

    _, _, test = held_out_split(survey_path, seed)
    embedder = load(spectrum_model)
    dataset = MMUDataset(survey_path, modalities=("spectrum",), indices=test[:n])
    rows = [dataset[i] for i in range(len(dataset))]
    stack = {k: np.stack([r[k] for r in rows]) for k in ("spectrum_flux", "spectrum_ivar", "spectrum_lambda",
                                                         "spectrum_mask")}
    batch = prepare_stored_spectra(stack["spectrum_flux"], stack["spectrum_ivar"], stack["spectrum_lambda"],
                                   stack["spectrum_mask"], config=embedder.preprocess_config)
    train_cfg = json.loads((Path(spectrum_model) / "config.json").read_text()).get("training", {})
    return reconstruction_report(embedder.model, batch, mask_fraction=train_cfg.get("mask_fraction", 0.3),
                                 chunk_len=chunk_len or train_cfg.get("chunk_len", 6), seed=seed)


def retrieval_stage(image_embeddings: Path, spectrum_embeddings: Path, survey_path: Path, seed: int = 0,
                    photometry_embeddings: Path | None = None) -> dict:
    """Held-out galaxies: find each one's spectrum from its image and the reverse, in the shared space.

    With ``photometry_embeddings`` (the same model's photometry catalogue) also photometry -> image,
    image -> photometry, photometry -> spectrum and spectrum -> photometry, under keys of their own."""
    from .embed.store import read_embeddings
    from .evaluate.retrieval import retrieval_report

    survey_ids, _, test = held_out_split(survey_path, seed)
    catalogues = {"image": image_embeddings, "spectrum": spectrum_embeddings, "photometry": photometry_embeddings}
    vectors = {m: read_embeddings(path, m, object_ids=survey_ids[test])[3]
               for m, path in catalogues.items() if path is not None}
    directions = [("image", "spectrum"), ("spectrum", "image")]
    if "photometry" in vectors:
        directions += [("photometry", "image"), ("image", "photometry"), ("photometry", "spectrum"),
                       ("spectrum", "photometry")]
    return {f"{a}_to_{b}": retrieval_report(vectors[a], vectors[b]) for a, b in directions}


def neighbour_stage(query_embeddings: Path, target_embeddings: Path, survey_path: Path, seed: int = 0,
                    k: int = 10) -> dict:
    """Held-out galaxies as queries against every galaxy of the target catalogue: median |dz|/(1+z) of
    query-neighbour pairs vs random pairs (in-modal, or cross-modal when the two catalogues differ)."""
    from .embed.store import read_embeddings
    from .evaluate.neighbours import neighbour_redshift_report

    survey_ids, _, test = held_out_split(survey_path, seed)
    z = survey_redshifts(survey_path)
    query_ids, _, _, queries = read_embeddings(query_embeddings, object_ids=survey_ids[test])
    target_ids, _, _, targets = read_embeddings(target_embeddings, object_ids=survey_ids)
    return neighbour_redshift_report(queries, query_ids, z[test], targets, target_ids, z, k=k, seed=seed)


def index_and_search_stage(embeddings: list[Path], index_dir: Path, survey_path: Path, console: Console,
                           k: int = 5) -> dict:
    """Index the catalogues and show an example search: the first held-out galaxy's neighbours."""
    from .search.catalog_search import CatalogSearch, build_index

    search = CatalogSearch(build_index(embeddings, index_dir))
    survey_ids, _, test = held_out_split(survey_path)
    query = str(survey_ids[test[0]])
    z = dict(zip(survey_ids, survey_redshifts(survey_path)))
    examples = {}
    for target in search.modalities:
        q_mod = search.modalities[0]
        if q_mod != target and not search.manifest.get("shared_space"):
            continue
        found = search.search(k=k, object_id=query, query_modality=q_mod, target_modality=target)
        examples[f"{q_mod}->{target}"] = [(n.object_id, round(n.similarity, 4), round(float(z[n.object_id]), 4))
                                          for n in found]
        shown = ", ".join(f"{oid} (sim {sim:.3f}, z {zz:.3f})" for oid, sim, zz in examples[f"{q_mod}->{target}"])
        console.print(f"[green]search[/]: {q_mod} -> {target} neighbours of {query} (z = {z[query]:.3f}): {shown}")
    return {"query": query, "query_redshift": float(z[query]), "neighbours": examples}


def report_stage(embeddings: dict[str, Path], survey_path: Path, out: Path, seed: int = 0,
                 log=None) -> dict:
    """`astroembed evaluate` on the demo's embeddings: the report every demo ends with.

    ``embeddings`` maps a feature-set name to its catalogue folder (the first is the representation under
    test, the others are compared with it); the photometry-only baseline is added from the survey. The
    held-out galaxies are those of :func:`held_out_split` (never seen by any pretraining stage). The demo's
    budget keeps to the fast probes (k-NN and linear, 200 bootstrap resamples; no label-efficiency curves,
    posterior flows or retrieval, which the demo's retrieval and search stages report);
    ``astroembed evaluate`` runs the rest. Returns the metrics dictionary; writes ``out/metrics.json``
    and ``out/report.html``.
    """
    from .evaluate.baselines import photometry
    from .evaluate.inputs import load_features, load_labels
    from .evaluate.probes import held_out_ids
    from .evaluate.runner import EvaluateOptions, evaluate_embeddings
    from .evaluate.tasks import Task

    modalities = {name: next((m for m in ("spectrum", "photometry") if m in name), "image") for name in embeddings}
    sets = [load_features(path, name=name, modality=modalities[name]) for name, path in embeddings.items()]
    sets.append(photometry(survey_path))
    labels = load_labels(survey_path, list(REPORT_LABELS))
    tasks = [Task("photo-z", "redshift"), *(Task("regression", c) for c in REPORT_LABELS[1:])]
    options = EvaluateOptions(seed=seed, test_fraction=TEST_FRACTION, probes=("knn", "linear"), n_bootstrap=200,
                              label_fractions=())
    return evaluate_embeddings(sets, labels, tasks, out, options, log=log,
                               held_out_ids=held_out_ids(labels.object_ids, TEST_FRACTION, seed))


def alignment_stage(alignment: str, image_model: Path, spectrum_model: Path, survey: Path, out: Path, seed: int,
                    clip_minutes: float, max_steps: int | None, console: Console) -> tuple[Path, dict[str, Path], dict]:
    """The demo's alignment (``"frozen"`` or ``"end_to_end"``, see :func:`run_demo`) and the shared-space
    catalogue of every modality it aligned (``out/embeddings/clip_<modality>``).

    Returns the aligned model, the catalogues by modality and the stage's results (method, seconds,
    modalities)."""
    t0 = time.perf_counter()
    if alignment == "frozen":
        console.print("[green]clip[/]: aligning image and spectrum encoders (projection heads on frozen features), "
                      "then a photometry encoder to them")
        clip_model = align_frozen_stage(image_model, spectrum_model, survey, out / "clip", seed)
    else:
        console.print(f"[green]clip[/]: aligning image and spectrum encoders end to end ({clip_minutes} min budget)")
        clip_model = pretrain_clip_stage(image_model, spectrum_model, survey, out / "clip", clip_minutes, seed,
                                         max_steps=max_steps)
    aligned = json.loads((Path(clip_model) / "config.json").read_text())["modalities"]
    done = {"method": alignment, "seconds": round(time.perf_counter() - t0, 1), "modalities": aligned}
    catalogues = {m: embed_stage(clip_model, survey, out / "embeddings" / f"clip_{m}", m) for m in aligned}
    return clip_model, catalogues, done


def photometry_redshift(metrics: dict, console: Console) -> dict:
    """The report's k-NN redshift of the held-out galaxies from the aligned photometry embedding beside the
    photometry-only baseline (the survey's arcsinh magnitudes): the same probe, split and bootstrap."""
    redshift = metrics["tasks"]["photo-z:redshift"]["results"]
    found = {"clip_photometry": redshift["clip_photometry"]["knn"]["metrics"],
             "photometry_baseline": redshift["photometry"]["knn"]["metrics"]}
    a, b = found["clip_photometry"], found["photometry_baseline"]
    console.print(f"[green]photometry[/]: k-NN redshift of held-out galaxies, aligned photometry embedding vs "
                  f"arcsinh magnitudes: R^2 {a['r2']:.3f} vs {b['r2']:.3f}, NMAD {a['nmad']:.4f} vs {b['nmad']:.4f}")
    return found


def run_demo(out: Path, n: int = 2000, seed: int = 0, console: Console | None = None,
             image_minutes: float = 5.0, spectrum_minutes: float = 2.0, clip_minutes: float = 2.0,
             max_steps: int | None = None, alignment: str = "frozen") -> dict:
    """Run every stage on the built-in survey of ``n`` galaxies under ``out``; returns (and writes to
    ``out/results.json``) the evaluation results. Each pretraining stage stops at its minutes budget or
    at ``max_steps`` steps, whichever comes first.

    ``alignment`` is ``"frozen"`` (projection heads trained on the frozen encoders' cached features,
    :func:`align_frozen_stage`; seconds, not minutes, so ``clip_minutes`` is unused) or ``"end_to_end"``
    (:func:`pretrain_clip_stage` for ``clip_minutes``). BENCHMARKS.md compares the two at the demo's budget.
    """
    if alignment not in ("frozen", "end_to_end"):
        raise ValueError(f"alignment must be 'frozen' or 'end_to_end', got {alignment!r}")
    from .data.info import print_summary, summarize

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    survey = build_survey(out, n, seed, console)
    summary = summarize(survey)
    print_summary(summary, console)
    expected = {"image": n, "spectrum": n, "photometry": n}
    if summary["modalities"] != expected:
        raise RuntimeError(f"survey validation failed: expected {expected}, found {summary['modalities']}")
    console.print("[green]survey[/]: validated (every object has an image, a spectrum and photometry)")
    results: dict = {"survey": str(survey)}

    console.print(f"[green]image[/]: self-supervised pretraining (SimCLR, small CNN, {image_minutes} min budget)")
    image_model = pretrain_image_stage(survey, out / "image", image_minutes, seed, max_steps=max_steps)
    baseline = random_init_model(image_model, out / "image_random_init" / "model", seed)
    reports = {}
    for name, model in (("pretrained", image_model), ("random_init", baseline)):
        emb_dir = embed_stage(model, survey, out / "embeddings" / f"image_{name}")
        reports[name] = redshift_report(emb_dir, survey, seed)
    console.print(f"[green]image[/]: k-NN (k=16) redshift of {reports['pretrained']['n_test']} held-out galaxies: "
                  f"R^2 pretrained {reports['pretrained']['r2']:.3f} vs random init "
                  f"{reports['random_init']['r2']:.3f}; sigma_MAD {reports['pretrained']['sigma_mad']:.4f} vs "
                  f"{reports['random_init']['sigma_mad']:.4f}")
    results["image_redshift_knn"] = reports

    console.print(f"[green]spectrum[/]: masked-modelling pretraining ({spectrum_minutes} min budget)")
    spectrum_model = pretrain_spectrum_stage(survey, out / "spectrum", spectrum_minutes, seed, max_steps=max_steps)
    results["spectrum_reconstruction"] = rec = reconstruction_stage(spectrum_model, survey, seed)
    console.print(f"[green]spectrum[/]: held-out masked chunks, ivar-weighted MSE {rec['model_mse']:.4f} vs "
                  f"linear interpolation {rec['interpolation_mse']:.4f}")
    spectrum_emb = embed_stage(spectrum_model, survey, out / "embeddings" / "spectrum", "spectrum")
    results["spectrum_redshift_knn"] = rep = redshift_report(spectrum_emb, survey, seed)
    console.print(f"[green]spectrum[/]: k-NN redshift R^2 {rep['r2']:.3f} from spectrum embeddings")

    clip_model, catalogues, results["alignment"] = alignment_stage(alignment, image_model, spectrum_model, survey,
                                                                    out, seed, clip_minutes, max_steps, console)
    clip_image, clip_spectrum = catalogues["image"], catalogues["spectrum"]
    clip_photometry = catalogues.get("photometry")
    results["retrieval"] = ret = retrieval_stage(clip_image, clip_spectrum, survey, seed, clip_photometry)
    for name, r in ret.items():
        console.print(f"[green]clip[/]: {name} retrieval of held-out partners: top-1 {r['top1']:.3f} "
                      f"(chance {r['top1_chance']:.4f}), top-1% {r['top1pct']:.3f} (chance {r['top1pct_chance']:.3f})")

    console.print("[green]predict[/]: spectra predicted from images (a decoder from the shared space)")
    results["predicted_spectra"] = pred = predicted_spectra_stage(clip_model, survey, out / "spectrum_decoder",
                                                                  out / "predicted_spectra.png", seed)
    chi2 = pred["chi2_per_dof_median"]
    console.print(f"[green]predict[/]: held-out median chi^2/dof {chi2['decoder']:.2f} vs {chi2['knn_mean']:.2f} for "
                  f"the mean of the {pred['k']} nearest training spectra; figure {pred['figure']}")

    results["search"] = index_and_search_stage(list(catalogues.values()), out / "index", survey, console)
    results["neighbour_redshift"] = {
        "image": neighbour_stage(clip_image, clip_image, survey, seed),
        "image->spectrum": neighbour_stage(clip_image, clip_spectrum, survey, seed)}
    for name, r in results["neighbour_redshift"].items():
        console.print(f"[green]search[/]: {name} top-10 neighbours median |dz|/(1+z) {r['median_dz_neighbours']:.4f} "
                      f"vs random pairs {r['median_dz_random']:.4f}")

    console.print("[green]report[/]: astroembed evaluate on every embedding (k-NN and linear probes, with the "
                  "photometry-only baseline)")
    t0 = time.perf_counter()
    metrics = report_stage({"image_pretrained": out / "embeddings" / "image_pretrained",
                            "image_random_init": out / "embeddings" / "image_random_init",
                            "spectrum": spectrum_emb, "clip_image": clip_image, "clip_spectrum": clip_spectrum,
                            **({"clip_photometry": clip_photometry} if clip_photometry else {})},
                           survey, out / "report", seed, log=lambda m: console.print(f"[green]report[/]: {m}"))
    results["report"] = {"metrics": str(out / "report" / "metrics.json"),
                         "html": str(out / "report" / "report.html"), "seconds": round(time.perf_counter() - t0, 1),
                         "r2_knn": {key: {name: r["knn"]["metrics"].get("r2") for name, r in task["results"].items()}
                                    for key, task in metrics["tasks"].items() if "label_efficiency" in task}}
    if clip_photometry:
        results["photometry_redshift_knn"] = photometry_redshift(metrics, console)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    console.print(f"results written to {out / 'results.json'}")
    console.print(f"explore them in a browser: astroembed serve --index {out / 'index'}")
    console.print(f"report: {out / 'report' / 'report.html'}")
    return results
