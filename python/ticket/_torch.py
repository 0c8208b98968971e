"""``ticket.from_torch``: export an ``nn.Module`` in memory, through ONNX.

PyTorch stays optional: it is imported only when this function is called.
"""

import os
import tempfile
from typing import Any


def from_torch(module: Any, example_input: Any, out: "str | os.PathLike[str]", **options: Any) -> "dict[str, Any]":
    """Export ``module`` (an ``torch.nn.Module``) to the CSR file ``out``.

    The module is traced with ``example_input`` (a tensor shaped ``[batch, *input]``) by
    ``torch.onnx.export`` into a temporary ONNX file, which :func:`ticket.export` then imports.
    Its zero weights are the mask, or pass ``keep=FRACTION`` to prune by magnitude on export;
    ``options`` are :func:`ticket.export`'s (``keep``, ``dtype``, ``force``, ``dataset``...).
    Returns the compression report.
    """
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("ticket.from_torch needs PyTorch: pip install torch onnx") from err
    from ._ticket import export

    was_training = module.training
    module.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="ticket-") as tmp:
            onnx_path = os.path.join(tmp, "model.onnx")
            with torch.no_grad():
                # The default exporter (dynamo) needs onnxscript; the TorchScript one does not.
                try:
                    import onnxscript  # noqa: F401

                    dynamo = True
                except ImportError:
                    dynamo = False
                torch.onnx.export(module, (example_input,), onnx_path, dynamo=dynamo)
            return export(onnx_path, out, **options)
    finally:
        module.train(was_training)
