"""TimesFM 2.5 through the library's own classes, for the stock 200M checkpoint and our micro model.

`timesfm.TimesFM_2p5_200M_torch` always builds the 200M module from a class-level definition, so a small model needs
its own module/wrapper pair. The micro wrapper stores its dimensions in the checkpoint's `config.json` (under
`micro_dims`, written by the library's `save_pretrained`), which is how `load_timesfm_2p5` tells the two apart.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import timesfm
from timesfm import configs
from timesfm.timesfm_2p5.timesfm_2p5_base import TimesFM_2p5_200M_Definition
from timesfm.timesfm_2p5.timesfm_2p5_torch import TimesFM_2p5_200M_torch_module

from chronotick.contract import InputScaling
from chronotick.kit.scaling import CONFIG_KEY, input_scaling

MICRO_DIMS_KEY = "micro_dims"
HUB_ID = "google/timesfm-2.5-200m-pytorch"

# The library's quantile output has 10 columns: 0 = mean head, 1..9 = these levels (5 = median = point forecast).
QUANTILE_COLUMNS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclasses.dataclass(frozen=True)
class MicroDims:
    """The dimensions that differ from the 200M definition; patch lengths and quantiles stay the library's."""

    model_dims: int = 128
    ff_dims: int = 256
    num_layers: int = 3
    num_heads: int = 4
    # The continuous quantile head predicts this many steps; >= max_horizon is all `compile` asks for.
    output_quantile_len: int = 128

    def definition(self) -> TimesFM_2p5_200M_Definition:
        base = TimesFM_2p5_200M_Definition()
        n_out = len(base.quantiles) + 1
        return dataclasses.replace(
            base,
            output_quantile_len=self.output_quantile_len,
            tokenizer=dataclasses.replace(base.tokenizer, hidden_dims=self.model_dims, output_dims=self.model_dims),
            stacked_transformers=configs.StackedTransformersConfig(
                num_layers=self.num_layers,
                transformer=dataclasses.replace(
                    base.stacked_transformers.transformer,
                    model_dims=self.model_dims,
                    hidden_dims=self.ff_dims,
                    num_heads=self.num_heads,
                ),
            ),
            output_projection_point=dataclasses.replace(
                base.output_projection_point,
                input_dims=self.model_dims,
                hidden_dims=self.model_dims,
                output_dims=base.output_patch_len * n_out,
            ),
            output_projection_quantiles=dataclasses.replace(
                base.output_projection_quantiles,
                input_dims=self.model_dims,
                hidden_dims=self.model_dims,
                output_dims=self.output_quantile_len * n_out,
            ),
        )


class MicroModule(TimesFM_2p5_200M_torch_module):
    """The library's module, built from a small definition instead of the class-level 200M one."""

    def __init__(self, dims: MicroDims) -> None:
        # The parent reads `self.config` in __init__; set it on the instance first (a plain attribute, so
        # nn.Module's bookkeeping does not need to exist yet).
        object.__setattr__(self, "config", dims.definition())
        super().__init__()


class TimesFM_2p5_micro_torch(timesfm.TimesFM_2p5_200M_torch):
    """The library's wrapper (decode, compile, forecast, save/from_pretrained) around a `MicroModule`."""

    def __init__(
        self,
        torch_compile: bool = False,
        config: dict[str, Any] | None = None,
        micro_dims: dict[str, int] | None = None,
        chronotick_input_scaling: InputScaling = "anchored",
        **kwargs: Any,
    ) -> None:
        # The hub mixin records these init arguments in config.json on save and passes them back on load: the
        # input scaling lands under the kit's `CONFIG_KEY`, where `checkpoint_input_scaling` reads it.
        self.model = MicroModule(MicroDims(**(micro_dims or {})))
        self.torch_compile = torch_compile
        self.chronotick_input_scaling = chronotick_input_scaling
        if config is not None:
            self._hub_mixin_config = config


def build_micro(dims: MicroDims, scaling: InputScaling = "anchored") -> TimesFM_2p5_micro_torch:
    """A freshly initialised micro model; `save_pretrained(dir)` writes config.json (the dims and the inputs it is
    trained on) + safetensors."""
    assert CONFIG_KEY == "chronotick_input_scaling"  # the init argument's name is what config.json gets
    return TimesFM_2p5_micro_torch(
        torch_compile=False, micro_dims=dataclasses.asdict(dims), chronotick_input_scaling=scaling
    )


def _micro_config(model_id: str) -> dict[str, Any] | None:
    config_path = Path(model_id) / "config.json"
    if not config_path.is_file():
        return None
    config = json.loads(config_path.read_text())
    return config if MICRO_DIMS_KEY in config else None


def checkpoint_input_scaling(model_id: str) -> InputScaling:
    """What the kit hands this checkpoint: its config's `CONFIG_KEY`; `anchored` for the stock model."""
    return input_scaling(_micro_config(model_id) or {})


def load_timesfm_2p5(
    model_id: str, *, max_context: int, max_horizon: int, batch_size: int = 1
) -> timesfm.TimesFM_2p5_200M_torch:
    """Load a local directory or hub id and compile it for `.forecast(horizon=..., inputs=[np arrays])`.

    A directory whose config.json has `micro_dims` builds the micro model; anything else (a hub id such as
    google/timesfm-2.5-200m-pytorch, or a directory saved from it) builds the stock 200M model.
    `forecast` pads every call to a multiple of `batch_size`, so keep it at the batch the caller really sends.
    A checkpoint that answers steps (`first-differences`) keeps its per-step quantiles as they come: the kit sums
    them into paths and sorts those (`chronotick.kit.scaling.as_offsets`).
    """
    micro = _micro_config(model_id)
    cls = TimesFM_2p5_micro_torch if micro is not None else timesfm.TimesFM_2p5_200M_torch
    answers_steps = input_scaling(micro or {}) == "first-differences"
    # torch.compile off: on 2 CPU cores it costs minutes at first call and saves nothing measurable.
    model = cls.from_pretrained(model_id, torch_compile=False)
    model.compile(
        timesfm.ForecastConfig(
            max_context=max_context,
            max_horizon=max_horizon,
            normalize_inputs=True,
            per_core_batch_size=batch_size,
            use_continuous_quantile_head=True,
            force_flip_invariance=True,
            # The library's default (True) clamps the forecast at 0 when every context value is >= 0:
            # wrong for clock offsets, which are signed (and are >= 0 after subtracting a running minimum).
            infer_is_positive=False,
            fix_quantile_crossing=not answers_steps,
        )
    )
    return model
