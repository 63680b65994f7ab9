"""Convert files, folders and globs of the field's formats into the Multimodal Universe layout, with a report
of what was read and what was skipped and why.

    report = convert(["spectra/", "cutouts/*.fits"], out="mmu", survey="mine")
    print(report.summary())

- A file named on its own must convert: any problem is an error naming it, and nothing is written.
- A folder is searched recursively (hidden files and folders excluded) and a glob (``*``, ``?``, ``[``,
  ``**``) is expanded; each file found is read by the reader its *content* calls for
  (:func:`astroembed.data.readers.detect.file_kind`: FITS HDU structure, image signatures, table headers),
  and a file that cannot be read, or whose records the layout refuses (a duplicated object id, an image
  of another shape than the survey's), is skipped as a whole and reported with the reason.
- The layout keeps one image shape (and band list) per survey config: images of the first shape met go
  to ``config``, those of any other shape to ``<config>_<bands>_<H>x<W>`` beside it (reported), so a
  folder of mixed cutouts converts whole. Records without images go to ``config``.
- Images found under a folder are labelled as :func:`~astroembed.data.readers.read_image_folder` labels
  them (``class`` = their first-level sub-folder). Files are read one at a time, so memory stays bounded.
- Reader reports (fibres skipped, values masked) are kept per file in the report.
"""

from __future__ import annotations

import glob
import warnings
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .mmu import MMUWriter
from .readers import ReaderWarning, read_catalog, read_desi_coadd, read_legacysurvey_cutout, read_sdss_spectrum
from .readers.detect import file_kind
from .readers.image_folder import read_image_in_folder
from .records import Galaxy, InvalidDataError

__all__ = ["FileResult", "ConvertReport", "expand_inputs", "read_file", "convert"]

_READERS = {"sdss": read_sdss_spectrum, "desi": read_desi_coadd, "cutout": read_legacysurvey_cutout,
            "table": read_catalog, "catalogue": read_catalog}
_GLOB_CHARACTERS = set("*?[")


@dataclass
class FileResult:
    """One input file: its kind and objects written, or why it was skipped; reader notes either way."""

    path: str
    kind: str = ""
    config: str = ""
    n_objects: int = 0
    reason: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class ConvertReport:
    """What :func:`convert` read (``read``) and skipped (``skipped``), file by file."""

    out: str
    read: list[FileResult] = field(default_factory=list)
    skipped: list[FileResult] = field(default_factory=list)
    masked: dict[str, int] = field(default_factory=dict)

    @property
    def n_objects(self) -> int:
        return sum(r.n_objects for r in self.read)

    def summary(self) -> str:
        """Plain-text report: counts by config and kind, then every skipped file with its reason."""
        files: Counter = Counter()
        objects: Counter = Counter()
        for r in self.read:
            files[r.config, r.kind] += 1
            objects[r.config, r.kind] += r.n_objects
        lines = [f"wrote {self.n_objects} objects from {len(self.read)} files to {self.out}; "
                 f"skipped {len(self.skipped)} files"]
        lines += [f"  {config}: {files[config, kind]} {kind} file(s), {objects[config, kind]} objects"
                  for config, kind in sorted(files)]
        lines += [f"  note {r.path}: {note}" for r in self.read for note in r.notes]
        lines += [f"  skipped {r.path}: {r.reason}" for r in self.skipped]
        if any(self.masked.values()):
            lines.append(f"  masked non-finite values: {self.masked}")
        return "\n".join(lines)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def expand_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path | None, bool]]:
    """(file, folder it was found in or None, named explicitly) for every input, in order; folders are
    walked recursively and globs expanded, each sorted. Raises InvalidDataError for an input that does
    not exist or a glob that matches nothing."""
    files: list[tuple[Path, Path | None, bool]] = []
    for item in inputs:
        text = str(item)
        if _GLOB_CHARACTERS & set(text) and not Path(text).exists():
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            if not matches:
                raise InvalidDataError("no file matches this pattern", source=text)
            for match in matches:
                files += expand_inputs([match]) if match.is_dir() else [(match, match.parent, False)]
            continue
        path = Path(text)
        if path.is_dir():
            files += [(p, path, False) for p in sorted(path.rglob("*")) if p.is_file() and not _hidden(p, path)]
        elif path.exists():
            files.append((path, None, True))
        else:
            raise InvalidDataError("no such file or folder", source=text)
    return files


def read_file(path: Path, folder: Path | None = None) -> tuple[str, list[Galaxy], list[str]]:
    """(kind, records, reader notes) of one file, its reader chosen by content; InvalidDataError when
    it cannot be read (the message names the file and says why)."""
    kind = file_kind(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReaderWarning)
        if kind == "image":
            galaxies = read_image_in_folder(path, folder if folder is not None else path.parent)
        else:
            galaxies = _READERS[kind](path)
    notes = []
    for w in caught:
        if issubclass(w.category, ReaderWarning):
            notes.append(str(w.message).removeprefix(f"file {path}: "))
        else:  # not ours to judge: pass it on
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not galaxies:
        raise InvalidDataError("no objects in the file" + (f" ({'; '.join(notes)})" if notes else ""),
                               source=str(path))
    return kind, galaxies, notes


def _image_key(galaxies: list[Galaxy]) -> tuple | None:
    return next(((g.image.flux.shape, tuple(g.image.bands)) for g in galaxies if g.image is not None), None)


def _config_name(config: str, key: tuple) -> str:
    """``<config>_<bands>_<H>x<W>``: the config of images whose shape differs from the first one met."""
    (_, height, width), bands = key
    joined = "".join(bands) if all(len(b) == 1 for b in bands) else "-".join(bands)
    return f"{config}_{joined}_{height}x{width}"


def convert(inputs: Iterable[str | Path], out, survey: str = "converted", config: str = "default",
            if_exists: str = "append") -> ConvertReport:
    """Convert every supported file of ``inputs`` (files, folders, globs) into ``out/survey/<config>``.

    Into a config that already holds tiles, ``if_exists="append"`` adds the new objects (ids must stay
    unique) and ``"error"`` refuses; nothing already written is replaced (:class:`MMUWriter`).

    Raises InvalidDataError (nothing written) when a file named explicitly cannot be converted, or when
    no file at all could be; see the module docstring for what is skipped and where images go.
    """
    from .mmu_merge import IF_EXISTS

    if if_exists not in IF_EXISTS:  # before any file is read
        raise ValueError(f"if_exists must be one of {IF_EXISTS}, got {if_exists!r}")
    inputs = list(inputs)
    files = expand_inputs(inputs)
    report = ConvertReport(out=str(Path(out) / survey))
    configs: dict[tuple, str] = {}  # image (shape, bands) -> config name; the first shape gets `config`
    with ExitStack() as stack:
        writers: dict[str, MMUWriter] = {}
        for path, folder, explicit in files:
            try:
                kind, galaxies, notes = read_file(path, folder)
                key = _image_key(galaxies)
                name = config if key is None else configs.get(key) or (
                    config if not configs else _config_name(config, key))
                if name not in writers:
                    writers[name] = stack.enter_context(MMUWriter(out, survey=survey, config=name, if_exists=if_exists))
                writers[name].source = str(path)
                writers[name].check(galaxies)  # skip the whole file rather than write part of it
            except InvalidDataError as exc:
                if explicit:
                    raise
                report.skipped.append(FileResult(str(path), reason=_reason(exc, path)))
                continue
            if key is not None:
                configs.setdefault(key, name)
            writers[name].add(galaxies)
            report.read.append(FileResult(str(path), kind, name, len(galaxies), notes=notes))
        if not report.read:
            raise InvalidDataError("no file could be converted:\n" + report.summary(),
                                   source=", ".join(map(str, inputs)))
        masked: Counter = Counter()
        for writer in writers.values():
            masked.update(writer.n_masked)
    report.masked = {k: v for k, v in masked.items() if v}
    return report


def _reason(exc: InvalidDataError, path: Path) -> str:
    """The error's message without the 'file <path>:' prefix the report already shows."""
    return str(exc).removeprefix(f"file {path}").lstrip(":, ")
