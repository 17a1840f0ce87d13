"""Fine-tune a ttm checkpoint on the early part of a clock's own log (see `chronotick.finetune`).

    python -m chronotick_ttm.finetune --model ttm --log PATH [--train-fraction 0.5] --out DIR

The checkpoint is the one the service would load (the bundled micro one, or the model's `*_MODEL_ID`); serve the
result by pointing the same variable at DIR.
ttm-exog is not offered: its loss needs the synthetic covariates, which a clock log does not carry.
"""

from __future__ import annotations

from collections.abc import Sequence

from chronotick import finetune
from chronotick_ttm.settings import TtmSettings
from chronotick_ttm.train import SPECS

MODEL_ID_ENV = {"ttm": "CHRONOTICK_TTM_MODEL_ID"}


def main(argv: Sequence[str] | None = None) -> None:
    finetune.main(
        SPECS,
        argv,
        checkpoint=TtmSettings().checkpoint,
        model_id_env=MODEL_ID_ENV,
        command_prefix="PYTHONPATH=shared:services/ttm python -m chronotick_ttm.finetune",
    )


if __name__ == "__main__":
    main()
