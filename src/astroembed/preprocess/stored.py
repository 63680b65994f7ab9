"""Spectra as files store them -> model input: padding recognised, any wavelength grid, records or arrays.

Stored spectra (MMU tiles, :class:`~astroembed.data.dataset.MMUDataset` batches) pad shorter spectra at
the end with wavelength <= 0; :func:`fill_padded_wavelengths` makes such rows valid input for resampling,
and :func:`prepare_stored_spectra` takes them (or a list of Spectrum records) to the resampled,
normalised, patched batch the spectrum transformer reads. Training, embedding and the web app all call
these, so a model sees its input the same way in each.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.records import InvalidDataError
from .spectrum import SpectrumPreprocessConfig, prepare_batch, prepare_spectra

__all__ = ["fill_padded_wavelengths", "prepare_stored_spectra"]


def fill_padded_wavelengths(flux, ivar, wavelength, mask=None):
    """Give the padding of stored spectra valid, masked wavelengths, so they can be resampled.

    MMU files and :class:`~astroembed.data.dataset.MMUDataset` pad shorter spectra at the end with
    wavelength -1 (mask False). Resampling needs strictly increasing wavelengths, so each trailing run
    of wavelengths <= 0 is replaced by the row's last real wavelength plus multiples of its last step
    (the last real pixel keeps its edges) and masked out. Rows without padding pass unchanged; input
    without any padding is returned as given (no copy).

    Returns
    -------
    ``(flux, ivar, wavelength, mask)``; wavelength and mask are float64 / bool tensors when padding
    was filled.

    Raises
    ------
    InvalidDataError : field ``spectrum_lambda``
        non-positive wavelengths that are not a trailing
        run, or a row with fewer than 2 real wavelengths.
    """
    if wavelength is None or isinstance(flux, (list, tuple)):
        return flux, ivar, wavelength, mask
    try:
        lam = torch.as_tensor(np.asarray(wavelength, dtype=np.float64)) if not isinstance(wavelength, torch.Tensor) \
            else wavelength.to(torch.float64)
    except (TypeError, ValueError):
        return flux, ivar, wavelength, mask  # prepare_batch reports unreadable input, naming the field
    n = lam.shape[-1] if lam.ndim else 0
    if lam.ndim not in (1, 2) or n < 2 or not bool((lam <= 0).any()):
        return flux, ivar, wavelength, mask
    rows = lam.reshape(-1, n)
    real = rows > 0
    n_real = real.sum(-1)
    trailing = (real == (torch.arange(n, device=rows.device) < n_real[:, None])).all(-1)
    if not bool(trailing.all()):
        row = int(torch.nonzero(~trailing)[0])
        raise InvalidDataError(f"row {row} has wavelengths <= 0 inside the spectrum; only a trailing run "
                               f"(the -1 padding of stored spectra) is allowed", field="spectrum_lambda")
    if bool((n_real < 2).any()):
        row = int(torch.nonzero(n_real < 2)[0])
        raise InvalidDataError(f"row {row} has {int(n_real[row])} real wavelengths (the rest is padding); "
                               f"a spectrum needs at least 2", field="spectrum_lambda")
    last = rows.gather(-1, (n_real - 1)[:, None])
    step = last - rows.gather(-1, (n_real - 2)[:, None])
    k = torch.arange(n, device=rows.device, dtype=rows.dtype) - (n_real - 1)[:, None]
    filled = torch.where(real, rows, last + k * step).reshape(lam.shape)
    pad = ~real.reshape(lam.shape)
    flux_shape = tuple(flux.shape) if hasattr(flux, "shape") else np.shape(flux)
    if tuple(pad.shape) != tuple(flux_shape):
        if pad.ndim != 1 or flux_shape[-1:] != (n,):
            return flux, ivar, wavelength, mask  # shape mismatch: prepare_batch names the field
        pad = pad.expand(*flux_shape)
    if mask is None:
        mask = ~pad
    else:
        m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask).astype(bool))
        if tuple(m.shape) != tuple(pad.shape):
            return flux, ivar, wavelength, mask  # prepare_batch reports the mask shape mismatch
        mask = m.to(pad.device).bool() & ~pad
    return flux, ivar, filled, mask


def prepare_stored_spectra(flux, ivar=None, wavelength=None, mask=None,
                           config: SpectrumPreprocessConfig | None = None,
                           device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Spectra as stored (any grid, MMU -1 padding allowed) -> the spectrum transformer's input batch.

    Parameters
    ----------
    flux
        (N, n_pix) or (n_pix,) array/tensor, or a list of :class:`~astroembed.data.records.Spectrum`
        records (or Galaxy records with a spectrum), each on its own grid and length.
    ivar, mask
        like flux (``None``: all ones / all good); ignored for records.
    wavelength
        (n_pix,) shared or (N, n_pix) per row, Angstrom, strictly increasing apart from a
        trailing run of padding (<= 0); required for arrays.
    config
        the model's saved preprocessing.
    device
        where the batch goes.
    """
    if isinstance(flux, (list, tuple)):
        records = [getattr(s, "spectrum", s) for s in flux]
        for i, s in enumerate(records):
            if s is None or not hasattr(s, "wavelength"):
                raise InvalidDataError(f"item {i} is not a Spectrum record (got {type(flux[i]).__name__})",
                                       field="spectrum_flux")
        return prepare_spectra(records, config, device=device)
    if wavelength is None:
        raise InvalidDataError("wavelengths are required for flux arrays (or pass Spectrum records)",
                               field="spectrum_lambda")
    flux, ivar, wavelength, mask = fill_padded_wavelengths(flux, ivar, wavelength, mask)
    return prepare_batch(flux, ivar, mask, wavelength, config, device=device)
