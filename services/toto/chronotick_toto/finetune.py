"""Fine-tune a toto checkpoint on the early part of a clock's own log (see `chronotick.finetune`).

    python -m chronotick_toto.finetune --model toto --log PATH [--train-fraction 0.5] --out DIR

The checkpoint is the one the service would load (the bundled micro one, or the model's `*_MODEL_ID`); serve the
result by pointing the same variable at DIR.
Only a checkpoint in the micro config is taken (the save writes that config): the bundled one or an earlier result.
A checkpoint keeps its input scaling: a ``last-value-mad`` one (config key ``chronotick_input_scaling``, identity
scaler) is tuned on the kit's scaled crops and saved with the key; an ``anchored`` one (no key, Toto's own causal
scaler) on the same crops back in microseconds, and saved without it (see ``chronotick_toto.train``).
"""

from __future__ import annotations

from collections.abc import Sequence

from chronotick import finetune
from chronotick_toto.settings import TotoSettings
from chronotick_toto.train import SPECS

MODEL_ID_ENV = {"toto": "CHRONOTICK_TOTO_MODEL_ID"}


def main(argv: Sequence[str] | None = None) -> None:
    finetune.main(
        SPECS,
        argv,
        checkpoint=TotoSettings().checkpoint,
        model_id_env=MODEL_ID_ENV,
        command_prefix="PYTHONPATH=shared:services/toto python -m chronotick_toto.finetune",
    )


if __name__ == "__main__":
    main()
