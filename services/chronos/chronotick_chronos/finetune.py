"""Fine-tune a chronos-family checkpoint on the early part of a clock's own log (see `chronotick.finetune`).

    python -m chronotick_chronos.finetune --model chronos-bolt|chronos-2 --log PATH [--train-fraction 0.5] --out DIR

The checkpoint is the one the service would load (the bundled micro one, or the model's `*_MODEL_ID`); serve the
result by pointing the same variable at DIR. TimesFM is not offered: its save path only writes micro models.
"""

from __future__ import annotations

from collections.abc import Sequence

from chronotick import finetune
from chronotick_chronos.settings import ChronosSettings
from chronotick_chronos.train import SPECS

MODEL_ID_ENV = {
    "chronos-bolt": "CHRONOTICK_CHRONOS_BOLT_MODEL_ID",
    "chronos-2": "CHRONOTICK_CHRONOS_CHRONOS2_MODEL_ID",
}


def main(argv: Sequence[str] | None = None) -> None:
    finetune.main(
        SPECS,
        argv,
        checkpoint=ChronosSettings().checkpoint,
        model_id_env=MODEL_ID_ENV,
        command_prefix="PYTHONPATH=shared:services/chronos python -m chronotick_chronos.finetune",
    )


if __name__ == "__main__":
    main()
