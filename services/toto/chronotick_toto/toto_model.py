"""Toto behind the kit's model interface, through the library's own ``TotoForecaster``.

Toto samples future paths autoregressively, one 64-step patch per decoding step; quantiles and mean
are those of the samples (``quantiles_from_samples``).

* **Same input alone or in a batch.** Every context is left-padded to ``MAX_CONTEXT`` with
  ``padding_mask`` False (what the library's own ``pad_array`` does up to a patch multiple), so a
  series is the same tensor whatever else shares its model call.
* **Same samples alone or in a batch.** The library draws all samples of a call from torch's global
  generator, so a series' draws would depend on its neighbours. ``SeededForecaster`` keeps the
  library's decoding loop but draws each series' samples from the distribution sliced to that
  series, under a fixed seed per decoding step: a series' answer is a function of the series and
  the seed only, and equal requests get equal answers. Horizons up to one patch (64 steps) take
  one backbone pass per context instead of one per sample.
* **Missing samples.** Toto has no NaN handling of its own: its ``padding_mask`` only weights the
  scaler's statistics, while the patch embedding still reads the value. So leading NaN become
  padding (0, masked), interior NaN are linearly interpolated and masked, trailing NaN hold the
  last observed value and are masked.
* **Input scaling.** A checkpoint whose ``config.json`` says ``chronotick_input_scaling:
  last-value-mad`` (``chronotick.kit.scaling``) was trained on contexts the kit has already made
  relative to their last value and divided by their mean absolute step; the library's causal
  std/mean scaler would re-standardise them and let the slow wander set the unit again. Its
  scaler (``Toto.model.scaler``, an attribute of ``TotoBackbone``, not a torch submodule: no
  weights) is replaced by ``IdentityScaler`` (data unchanged, loc 0, scale 1), and the backbone's
  loc/scale that de-normalise the output distribution are then the identity too: the model works
  in the kit's units, which map back. The library's ``padding_mask`` is read by its scaler only,
  so under the identity scaler it has no effect. Released checkpoints (no key) keep their scaler
  and ``input_scaling`` "anchored". The key is not one of Toto's constructor arguments, so a
  local checkpoint is loaded with its config passed explicitly, without the key (``load_toto``).
* **Covariates.** Those with known future values are Toto's exogenous variates (the last variates;
  the forecaster injects their future values after each decoded patch, so they steer the steps
  after the first 64 and cannot move the first 64). Past-only covariates are further
  variates of the same group: the model attends to them and forecasts them alongside the offset,
  and their forecasts are dropped; a covariate whose future is not known is one of these. For a
  ``last-value-mad`` checkpoint, which has no scaler to standardise them, every covariate is given
  as its change since its last past value in physical units (``covariate_changes``: past gaps
  carry the previous value), its known future likewise.
* **Cadence.** ``time_interval_seconds`` is the request's own cadence (whole seconds, at least 1:
  the library keeps it as an integer), not upstream's hard-coded 3600.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.distributions import Categorical, Distribution, MixtureSameFamily, StudentT

from chronotick.contract import InputScaling, ModelInfo
from chronotick.kit import BatchForecast, ModelBatch, weights_version
from chronotick.kit.scaling import CONFIG_KEY, covariate_changes_by_name, input_scaling
from chronotick.kit.spread import SPREAD_LEVELS, quantiles_from_samples

# gluonts (imported by toto) suggests orjson/ujson at import; its JSON speed is irrelevant here.
warnings.filterwarnings("ignore", message="Using `json`-module", category=UserWarning)

from toto.data.util.dataset import MaskedTimeseries, replace_extreme_values  # noqa: E402 - after the filter
from toto.inference.forecaster import TotoForecaster  # noqa: E402
from toto.model.scaler import Scaler  # noqa: E402 - gluonts' base, which the library's scalers subclass
from toto.model.toto import Toto  # noqa: E402

MAX_CONTEXT = 512
MAX_HORIZON = 256  # four decoding steps of 64: each step costs one more pass of the sampled batch
MIN_CONTEXT = 16


class IdentityScaler(Scaler):
    """The library's scaler interface, doing nothing: data unchanged, loc 0 and scale 1 at every position.

    Same call and return shapes as ``CausalPatchStdMeanScaler`` (loc and scale shaped like the data), so the
    backbone, the forecaster's affine de-normalisation and the training loss use it unchanged.
    """

    def __call__(
        self, data: torch.Tensor, padding_mask: torch.Tensor, weights: torch.Tensor, prefix_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return data, torch.zeros_like(data), torch.ones_like(data)


def use_input_scaling(model: Toto, scaling: InputScaling) -> Toto:
    """The model as a checkpoint of ``scaling`` runs: ``last-value-mad`` bypasses the library's scaler."""
    if scaling == "last-value-mad":
        model.model.scaler = IdentityScaler()
    return model


def model_input_scaling(model: Toto) -> InputScaling:
    """The scaling a loaded or built model expects, read from its scaler."""
    return "last-value-mad" if isinstance(model.model.scaler, IdentityScaler) else "anchored"


def load_toto(model_id: str) -> Toto:
    """A local checkpoint directory through ``load_from_checkpoint``, a hub id through ``from_pretrained``;
    the scaler replaced as its config's ``chronotick_input_scaling`` asks (see the module docstring).

    ``from_pretrained`` on a local directory hands the weights *file* to ``load_from_checkpoint``,
    which then looks for config.json beside it under the file's name and builds no model; the
    directory must go to ``load_from_checkpoint`` itself. A directory whose config carries the key
    goes as its weights file with the config as keyword arguments, less the key (Toto's constructor
    takes no unknown argument). Hub ids are released checkpoints: anchored.
    """
    # No xFormers on CPU: the memory-efficient attention path would fail.
    options: dict[str, object] = {"map_location": "cpu", "use_memory_efficient_attention": False}
    scaling: InputScaling = "anchored"
    directory = Path(model_id)
    if directory.is_dir():
        config_path = directory / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        scaling = input_scaling(config)
        if CONFIG_KEY in config:
            config.pop(CONFIG_KEY)
            model = Toto.load_from_checkpoint(str(directory / "model.safetensors"), **{**config, **options})
        else:
            model = Toto.load_from_checkpoint(model_id, **options)
    else:
        model = Toto.from_pretrained(model_id, **options)
    use_input_scaling(model, scaling)
    model.eval()
    # The library's mixture head builds a Categorical over every position of every sample row on each
    # call; checking its arguments took about a fifth of a forecast. Its outputs are valid by
    # construction (softmax, softplus), and this process runs nothing else.
    torch.distributions.Distribution.set_default_validate_args(False)
    return model


def _next_patch(distribution: Distribution, rows: slice, patch: int) -> Distribution:
    """The output distribution at some rows of its batch, last ``patch`` positions only.

    Those positions predict the next patch; the library samples every position and keeps these.
    Handles Toto's two output heads (Student-t, mixture of Student-t).
    """
    at = (rows, slice(None), slice(-patch, None))
    if isinstance(distribution, MixtureSameFamily):
        components = distribution.component_distribution
        assert isinstance(components, StudentT)
        return MixtureSameFamily(
            Categorical(probs=distribution.mixture_distribution.probs[at]),
            type(components)(components.df[at], components.loc[at], components.scale[at]),
        )
    if isinstance(distribution, StudentT):
        return StudentT(distribution.df[at], distribution.loc[at], distribution.scale[at], validate_args=False)
    raise TypeError(f"no per-series sampling for {type(distribution).__name__}")


def _seeded_sample(distribution: Distribution, seed: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return distribution.sample(torch.Size(shape))


class _PerSeriesDraws:
    """What ``generate_samples`` calls ``sample()`` on: each series' rows drawn under the same seed.

    The library lays rows out as ``(samples series)``, so series ``b`` owns rows ``b::n_series``.
    """

    def __init__(self, parts: list[Distribution], seed: int) -> None:
        self._parts, self._seed = parts, seed

    def sample(self) -> torch.Tensor:
        draws = [_seeded_sample(part, self._seed) for part in self._parts]
        n = len(draws)
        out = torch.empty((draws[0].shape[0] * n, *draws[0].shape[1:]), dtype=draws[0].dtype)
        for b, draw in enumerate(draws):
            out[b::n] = draw
        return out


class SeededForecaster(TotoForecaster):
    """The library's forecaster, with samples that depend on each series and the seed only.

    Horizons of one patch or less need a single model pass, and the library would run it on
    ``num_samples`` copies of every context; those run the backbone once per context and draw all
    samples from its next-patch distribution (the same distribution, a fraction of the work).
    """

    def __init__(self, model: torch.nn.Module, seed: int) -> None:
        super().__init__(model)
        self._seed = seed
        self._n_series = 1
        self._step = 0

    @property
    def _patch(self) -> int:
        return int(self.model.patch_embed.patch_size)

    def sample_paths(
        self,
        inputs: MaskedTimeseries,
        prediction_length: int,
        num_samples: int,
        future_exogenous_variables: torch.Tensor | None,
    ) -> torch.Tensor:
        """(batch, variates, prediction_length, num_samples) sample paths."""
        if prediction_length <= self._patch:
            return self._one_patch(inputs, prediction_length, num_samples)
        self._n_series, self._step = inputs.series.shape[0], 0
        forecast = self.forecast(
            inputs,
            prediction_length=prediction_length,
            num_samples=num_samples,
            samples_per_batch=num_samples,
            future_exogenous_variables=future_exogenous_variables,
        )
        assert forecast.samples is not None
        return forecast.samples

    def _one_patch(self, inputs: MaskedTimeseries, prediction_length: int, num_samples: int) -> torch.Tensor:
        assert inputs.series.shape[-1] % self._patch == 0, "contexts are padded to a whole number of patches"
        base, loc, scale = self.model(
            inputs=inputs.series,
            input_padding_mask=inputs.padding_mask,
            id_mask=inputs.id_mask,
            scaling_prefix_length=inputs.series.shape[-1],
            num_exogenous_variables=inputs.num_exogenous_variables,
        )
        draws = [
            _seeded_sample(
                TotoForecaster.create_affine_transformed(
                    _next_patch(base, slice(b, b + 1), self._patch), loc[b : b + 1], scale[b : b + 1]
                ),
                self._seed * 1_000_003 + 1,
                (num_samples,),
            )[:, 0]
            for b in range(inputs.series.shape[0])
        ]
        samples = replace_extreme_values(torch.stack(draws))  # (batch, samples, variates, patch)
        return samples[..., :prediction_length].permute(0, 2, 3, 1)

    def create_affine_transformed(  # type: ignore[override]  # the library's is a staticmethod
        self, base_distr: Distribution, loc: torch.Tensor, scale: torch.Tensor
    ) -> _PerSeriesDraws:
        n = self._n_series
        parts = [
            TotoForecaster.create_affine_transformed(
                _next_patch(base_distr, slice(b, None, n), self._patch), loc[b::n], scale[b::n]
            )
            for b in range(n)
        ]
        self._step += 1
        return _PerSeriesDraws(parts, self._seed * 1_000_003 + self._step)


def _fill(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values the patch embedding can read, and the mask of observed samples (see module docstring)."""
    observed = ~np.isnan(row)
    if not observed.any():
        return np.zeros_like(row), observed
    index = np.flatnonzero(observed)
    filled = np.interp(np.arange(row.size), index, row[index])
    filled[: index[0]] = 0.0
    return filled, observed


class TotoModel:
    def __init__(self, name: str, model_id: str, *, num_samples: int = 64, seed: int = 0) -> None:
        self._toto = load_toto(model_id)
        self._forecaster = SeededForecaster(self._toto.model, seed)
        self._num_samples = num_samples
        self._scaling = model_input_scaling(self._toto)
        self._info = ModelInfo(
            name=name,
            model_id=model_id,
            model_version=weights_version(model_id),
            library="toto-ts",
            min_context=MIN_CONTEXT,
            max_context=MAX_CONTEXT,
            max_horizon=MAX_HORIZON,
            one_pass_horizon=int(self._toto.model.patch_embed.patch_size),  # one patch a decoding pass
            native_quantile_levels=SPREAD_LEVELS.tolist(),
            past_covariates=True,
            future_covariates=True,
            input_scaling=self._scaling,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def forecast(self, batch: ModelBatch) -> BatchForecast:
        n = len(batch)
        future_names = sorted(batch.future_covariates[0]) if batch.future_covariates else []
        past_only = sorted(set(batch.past_covariates[0]) - set(future_names)) if batch.past_covariates else []
        names = past_only + future_names  # exogenous variates last, as the forecaster requires
        variates = 1 + len(names)
        series = np.zeros((n, variates, MAX_CONTEXT))
        observed = np.zeros((n, variates, MAX_CONTEXT), dtype=bool)
        futures: list[np.ndarray] = []
        for i, context in enumerate(batch.contexts):
            covariates, future = self._covariates(batch, i, names, future_names)
            futures.append(future)
            for v, row in enumerate([np.asarray(context, dtype=float), *covariates]):
                values, mask = _fill(row[-MAX_CONTEXT:])
                series[i, v, MAX_CONTEXT - values.size :] = values
                observed[i, v, MAX_CONTEXT - values.size :] = mask
        interval = np.array([max(1, round(s)) for s in batch.interval_s])
        inputs = MaskedTimeseries(
            series=torch.tensor(series, dtype=torch.float32),
            padding_mask=torch.tensor(observed),
            id_mask=torch.zeros((n, variates, MAX_CONTEXT), dtype=torch.int),
            timestamp_seconds=torch.tensor(interval[:, None, None] * np.arange(MAX_CONTEXT)).expand(n, variates, -1),
            time_interval_seconds=torch.tensor(interval[:, None]).expand(n, variates),
            num_exogenous_variables=len(future_names),
        )
        future = torch.tensor(np.stack(futures), dtype=torch.float32) if future_names else None
        with torch.inference_mode():
            paths = self._forecaster.sample_paths(inputs, batch.horizon, self._num_samples, future)
        samples = paths[:, 0].permute(0, 2, 1).to(torch.float64).numpy()  # (batch, samples, horizon)
        return quantiles_from_samples(samples)

    def _covariates(
        self, batch: ModelBatch, i: int, names: list[str], future_names: list[str]
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Series ``i``'s past covariates in ``names`` order and its (F, horizon) known futures (the last F names):
        raw for an anchored checkpoint, changes since their last past value for a ``last-value-mad`` one."""
        past = [np.asarray(batch.past_covariates[i][k], dtype=float) for k in names]
        future = np.zeros((len(future_names), batch.horizon))
        for f, k in enumerate(future_names):
            future[f] = batch.future_covariates[i][k]
        if self._scaling == "last-value-mad" and names:
            # Past-only covariates have no future row: they stay past-only variates.
            past_changes, future_changes = covariate_changes_by_name(
                dict(zip(names, past, strict=True)), dict(zip(future_names, future, strict=True)), batch.horizon
            )
            known = [future_changes[k] for k in future_names]
            return [past_changes[k] for k in names], np.stack(known) if known else future
        return past, future
