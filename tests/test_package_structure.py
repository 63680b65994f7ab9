"""The package's shape: no import circles, and loading a model for embedding pulls in no training code.

The import graph is read from the source (every ``import`` statement, at module level or inside a
function: a lazy import is still a dependency), so a circle is caught before it bites at run time.
"""

import ast
import re
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import astroembed

PACKAGE_ROOT = Path(astroembed.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The astroembed modules ``path`` imports (``from pkg import name`` counts name when it is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE_ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_the_package():
    graph = import_graph()
    assert len(graph) > 40  # the walk really saw the package
    assert cycles(graph) == []


def test_layers_flow_one_way():
    """Nothing upstream reaches into the application layers (training, pipeline, CLI, app)."""
    graph = import_graph()
    upstream = ("astroembed.data", "astroembed.preprocess", "astroembed.models", "astroembed.search",
                "astroembed.inference", "astroembed.embed")
    downstream = ("astroembed.train", "astroembed.pipeline", "astroembed.cli", "astroembed.augment",
                  "astroembed.objectives")
    bad = sorted((m, d) for m, deps in graph.items() if m.startswith(upstream)
                 for d in deps if d.startswith(downstream))
    assert bad == []


# Modules that loading a model and embedding with it must never import: training machinery and its
# heavy dependencies. Checked in a fresh interpreter, so nothing imported by other tests leaks in.
TRAINING_ONLY = ("lightning", "pytorch_lightning", "astroembed.train", "astroembed.objectives",
                 "astroembed.augment", "astroembed.pipeline", "galsim", "kcorrect", "dask", "distributed")


@pytest.mark.parametrize("kind", ["image", "spectrum", "aligned"])
def test_load_and_embed_import_no_training_code(tmp_path, kind):
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import torch
        from astroembed.models.io import save_model
        kind = {kind!r}
        out = {str(tmp_path / "model")!r}
        """) + textwrap.dedent("""
        # Build and save a tiny model of the kind with the models package only, then forget every
        # astroembed module, so that what load() + embed() import is measured from a clean slate.
        from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
        from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig
        from astroembed.preprocess import PreprocessConfig, SpectrumPreprocessConfig
        image_cfg = ImageEncoderConfig(arch="small_cnn", in_channels=3, widths=(4, 8))
        spec_pre = SpectrumPreprocessConfig(wave_step=20.0)
        spec_cfg = SpectrumTransformerConfig.for_preprocess(spec_pre, dim=16, depth=1, num_heads=2)
        image_extra = {"preprocessing": PreprocessConfig(crop_size=16).to_dict(), "bands": ["g", "r", "z"]}
        if kind == "image":
            save_model(build_image_encoder(image_cfg), {"model_type": "image_encoder", "modality": "image",
                       "model": image_cfg.to_dict(), "embed_dim": 8, **image_extra}, out)
        elif kind == "spectrum":
            save_model(SpectrumTransformer(spec_cfg), {"model_type": "spectrum_transformer", "modality": "spectrum",
                       "model": spec_cfg.to_dict(), "preprocessing": spec_pre.to_dict(), "embed_dim": 16}, out)
        else:
            from astroembed.models.clip_model import AlignedModel
            model = AlignedModel(build_image_encoder(image_cfg), SpectrumTransformer(spec_cfg), 8, 0,
                                 image_config={"model_type": "image_encoder", "model": image_cfg.to_dict()},
                                 spectrum_config={"model_type": "spectrum_transformer", "model": spec_cfg.to_dict()})
            save_model(model, {"model_type": "aligned", "modality": "aligned", "modalities": ["image", "spectrum"],
                               "model": model.model_config(), "bands": ["g", "r", "z"], "embed_dim": 8,
                               "preprocessing": {"image": image_extra["preprocessing"],
                                                 "spectrum": spec_pre.to_dict()}}, out)
        for name in [m for m in sys.modules if m.startswith("astroembed")]:
            del sys.modules[name]
        before = set(sys.modules)

        import astroembed
        model = astroembed.load(out)
        rng = np.random.default_rng(0)
        if kind in ("image", "aligned"):
            vectors = model.embed(rng.normal(size=(2, 3, 24, 24)).astype(np.float32))
            assert np.isfinite(vectors).all()
        if kind in ("spectrum", "aligned"):
            wave = np.linspace(3600, 9800, 500)
            vectors = model.embed_spectrum(1 + rng.normal(size=(2, 500)) * 0.1, np.ones((2, 500)), wave)
            assert np.isfinite(vectors).all()
        print(json.dumps(sorted(set(sys.modules) - before)))
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert any(m.startswith("astroembed.models") for m in imported)  # the check saw the loading
    offending = sorted(m for m in imported if m.split(".")[0] in TRAINING_ONLY or m.startswith(TRAINING_ONLY))
    assert offending == []


def test_docstrings_follow_one_convention():
    """numpydoc sections ("Parameters" underlined), as scikit-learn and astropy write them, not Google's
    "Args:" style: one convention a reader learns once."""
    google = re.compile(r"^\s+(Args|Arguments|Returns|Raises|Attributes|Yields):\s*$", re.M)
    offending = [f"{path.relative_to(PACKAGE_ROOT)}:{text[:match.start()].count(chr(10)) + 1}"
                 for path in sorted(PACKAGE_ROOT.rglob("*.py"))
                 for text in [path.read_text()] for match in google.finditer(text)]
    assert offending == []
