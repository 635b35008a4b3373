"""The weights of the last good epoch, for cnnkit's NaN guard (``fit`` without Keras's
``TerminateOnNaN``): when an epoch's loss turns NaN or infinite, training stops and these
are put back.

One set of CPU buffers is allocated when training starts and refreshed in place (``copy_``)
at every epoch end: no new state dict, no allocation per epoch.
"""

from __future__ import annotations

import torch

__all__ = ["LastGood"]


class LastGood:
    """``keep()`` copies the model's state into the buffers; ``restore()`` puts it back."""

    def __init__(self, model):
        self.model = model
        self.buffers = {k: torch.empty_like(v, device="cpu")
                        for k, v in model.state_dict().items()}
        self.keeps = 0  # how many times the state was copied (the benchmark reads it)
        self.keep()

    @torch.no_grad()
    def keep(self) -> None:
        for key, value in self.model.state_dict().items():
            self.buffers[key].copy_(value)
        self.keeps += 1

    def restore(self) -> None:
        self.model.load_state_dict(self.buffers)
