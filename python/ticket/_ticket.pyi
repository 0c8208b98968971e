"""Type stubs of the Rust extension module behind ``ticket``."""

from os import PathLike
from typing import Any, Literal, Optional, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike[str]]

class TicketError(ValueError):
    """Bad input: a corrupt or unsupported file, wrong shapes, an unknown option."""

class Model:
    """A sparse model loaded from a CSR safetensors file written by ``ticket export``."""

    @property
    def input_shape(self) -> list[int]:
        """The shape of one example, e.g. ``[784]`` or ``[1, 28, 28]``."""
    @property
    def classes(self) -> int:
        """Logits per example."""
    @property
    def info(self) -> dict[str, Any]:
        """Graph, per-layer shape, density and value codec, value dtype, weight and file bytes."""
    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Logits ``[batch, classes]`` of ``x`` shaped ``[batch, *input_shape]`` (or
        ``[batch, features]``); one example shaped ``input_shape`` gives ``[classes]``.

        A C-contiguous float32 array is read in place; other floating-point arrays are
        converted; integer arrays raise :class:`TicketError`. The GIL is released while the
        kernels run, so threads may share one model."""
    def benchmark(self, threads: Optional[int] = None) -> dict[str, Any]:
        """The figures of ``ticket infer --bench``: batch-1 latency (p50/p99) and time per
        example at batch 64 and 1024, sparse and dense."""

def load(path: _Path, *, threads: Optional[int] = None) -> Model:
    """Loads and validates a CSR safetensors model (``OSError`` if it cannot be read,
    :class:`TicketError` if it is not a valid model); ``predict`` uses up to ``threads``
    threads (default: all cores)."""

def export(
    source: _Path,
    out: _Path,
    *,
    keep: Optional[float] = None,
    keep_layers: Optional[dict[str, float]] = None,
    pruning: Literal["layerwise", "global"] = "layerwise",
    dtype: str = "f32",
    index_bits: Optional[Union[int, str]] = None,
    level: Optional[int] = None,
    force: bool = False,
    dataset: Optional[Literal["digits", "fashion-mnist"]] = None,
    data: Optional[_Path] = None,
) -> dict[str, Any]:
    """Exports ``source`` (an experiment directory, a ticket checkpoint, a ticket CSR file to
    re-encode, a PyTorch state dict in safetensors, or an ONNX file) to the CSR file ``out``;
    returns the compression report.

    ``keep`` prunes by magnitude on export (the fraction of weights kept, per layer or
    ``pruning="global"``); ``keep_layers`` gives named layers their own fraction
    (``{"conv1": 0.84, "fc6": 0.09}``: the file's layer names or Han's ``convP``/``fcP``);
    ``dtype`` is one codec or one per layer kind (``"conv=k8,linear=k5"``); ``index_bits``
    stores column indices as gaps of that many bits (3..8), one width per kind
    (``"conv=4,linear=5"``) or ``"auto"`` (per kind the width giving the fewest bytes);
    ``dataset``/``data`` measure accuracy before and after."""
