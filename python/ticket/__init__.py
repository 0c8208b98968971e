"""Lottery tickets you can deploy, from Python.

``ticket`` runs sparse models exported by the ``ticket`` toolkit (CSR safetensors) with its
Rust kernels, numpy in and numpy out::

    import numpy as np, ticket
    model = ticket.load("lenet.csr.safetensors")
    logits = model.predict(np.zeros((1, 784), np.float32))   # [batch, classes] float32
    print(model.info["density"], model.benchmark()["batch1_us_p50"])
    report = ticket.export("runs/lenet", "lenet-f16.safetensors", dtype="f16")

Errors are exceptions carrying one line: :class:`TicketError` (a ``ValueError``) for bad
input, ``OSError`` (``FileNotFoundError``, ``FileExistsError``) when a file cannot be read or
written.
"""

from ._ticket import Model, TicketError, export, load
from ._torch import from_torch

__all__ = ["Model", "TicketError", "export", "from_torch", "load"]
__version__ = "0.1.0"
