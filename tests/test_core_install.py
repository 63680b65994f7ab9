"""A core install (`pip install astroembed`, no extras) loads, embeds, indexes, searches, converts and
summarises; commands that need an extra say which one in one line.

The optional packages are made unimportable in a fresh interpreter by a meta-path finder that refuses
them, as if they were not installed.
"""

import json
import subprocess
import sys
import textwrap

import pytest

OPTIONAL = ["lightning", "pytorch_lightning", "galsim", "kcorrect", "speclite", "dask", "distributed", "sklearn",
            "matplotlib", "umap", "zuko", "fastapi", "uvicorn"]

# None in sys.modules is Python's own "not importable": `import x` raises ModuleNotFoundError and
# importlib.util.find_spec("x") returns None, exactly as for a package that is not installed.
BLOCKER = textwrap.dedent(f"""
    import sys
    for _name in {OPTIONAL!r}:
        sys.modules[_name] = None
    """)


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=300)


def test_the_blocker_really_blocks():
    result = _run("import lightning")
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr and "lightning" in result.stderr


def test_core_api_works_without_any_extra(tmp_path, blob_survey):
    survey, _ = blob_survey
    result = _run(f"""
        import json, sys
        import numpy as np
        from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
        from astroembed.models.io import save_model
        from astroembed.preprocess import PreprocessConfig
        cfg = ImageEncoderConfig(arch="small_cnn", in_channels=3, widths=(4, 8))
        model_dir = {str(tmp_path / "model")!r}
        save_model(build_image_encoder(cfg), {{"model_type": "image_encoder", "modality": "image",
                   "model": cfg.to_dict(), "embed_dim": 8, "bands": ["g", "r", "z"],
                   "preprocessing": PreprocessConfig(crop_size=16).to_dict()}}, model_dir)

        import astroembed
        from astroembed.data.info import summarize
        from astroembed.data.mmu import MMUSurvey
        from astroembed.embed import EmbedConfig, embed_catalog
        from astroembed.search.catalog_search import CatalogSearch, build_index

        survey = {str(survey)!r}
        vectors = astroembed.load(model_dir).embed(MMUSurvey(survey).galaxy(0).image.flux[None])
        embeddings = embed_catalog(EmbedConfig(model=model_dir, data=survey, out={str(tmp_path / "emb")!r}),
                                   progress=False)
        search = CatalogSearch(build_index([embeddings], {str(tmp_path / "index")!r}))
        found = search.search(k=3, object_id="blob-0000")
        print(json.dumps({{"dim": vectors.shape[1], "n": summarize(survey)["n_objects"],
                          "found": [n.object_id for n in found]}}))
        """)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["dim"] == 8 and out["n"] == 48
    assert len(out["found"]) == 3 and all(oid.startswith("blob-") for oid in out["found"])


@pytest.mark.parametrize("argv, extra", [
    (["pretrain", "image", "--data", "x", "--out", "y"], "train"),
    (["simulate", "--out", "y", "--n", "3"], "survey"),
    (["demo", "--out", "y"], "survey"),
    (["serve", "--index", "x"], "app"),
])
def test_commands_that_need_an_extra_say_which(tmp_path, argv, extra):
    result = _run("""
        import sys
        from astroembed.cli import app
        sys.argv = ["astroembed", *sys.argv[1:]]
        app()
        """, *argv)
    assert result.returncode != 0
    assert f"pip install 'astroembed[{extra}]'" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
