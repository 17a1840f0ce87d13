"""Chronos-Bolt and Chronos-2 on the kit's ``last-value-mad`` inputs.

Both models standardise every input row inside the network (``model.instance_norm``: minus its mean, over its
standard deviation), which would undo the kit's scaling: a context in units of its own step would be put back in
units of its slow wander. A checkpoint trained on the kit's units says so in its config (``chronotick.kit.scaling.
CONFIG_KEY``); its instance norm is then replaced by ``KitUnitsNorm``, which keeps the values as the kit sent them
(Chronos-2's arcsinh squashing, a config option, still applies). The norm has no weights, so the checkpoint's
state dict is the library's own and ``from_pretrained`` loads it unchanged; released checkpoints keep their norm.
"""

from __future__ import annotations

import torch
from chronos.chronos_bolt import InstanceNorm

from chronotick.contract import InputScaling
from chronotick.kit.scaling import input_scaling


class KitUnitsNorm(InstanceNorm):
    """``InstanceNorm`` with location 0 and scale 1: the inputs are already in the kit's units."""

    def forward(
        self, x: torch.Tensor, loc_scale: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if loc_scale is None:
            shape = (*x.shape[:-1], 1)
            loc_scale = (torch.zeros(shape, device=x.device), torch.ones(shape, device=x.device))
        return super().forward(x, loc_scale)


def adopt_input_scaling(model: torch.nn.Module) -> InputScaling:
    """Fit ``model`` (a Chronos-Bolt or Chronos-2 module) to the scaling its config names; returns that scaling."""
    scaling = input_scaling(model.config.to_dict())
    if scaling != "anchored":
        current = model.instance_norm
        model.instance_norm = KitUnitsNorm(eps=current.eps, use_arcsinh=current.use_arcsinh)
    return scaling
