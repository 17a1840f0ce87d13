"""Fine-tune a timemoe checkpoint on the early part of a clock's own log (see `chronotick.finetune`).

    python -m chronotick_timemoe.finetune --model timemoe --log PATH [--train-fraction 0.5] --out DIR

The checkpoint is the one the service would load (the bundled micro one, or the model's `*_MODEL_ID`); serve the
result by pointing the same variable at DIR.
"""

from __future__ import annotations

from collections.abc import Sequence

from chronotick import finetune
from chronotick_timemoe.settings import TimeMoeSettings
from chronotick_timemoe.train import SPECS

MODEL_ID_ENV = {"timemoe": "CHRONOTICK_TIMEMOE_MODEL_ID"}


def main(argv: Sequence[str] | None = None) -> None:
    finetune.main(
        SPECS,
        argv,
        checkpoint=TimeMoeSettings().checkpoint,
        model_id_env=MODEL_ID_ENV,
        command_prefix="PYTHONPATH=shared:services/timemoe python -m chronotick_timemoe.finetune",
    )


if __name__ == "__main__":
    main()
