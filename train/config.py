"""A training run's configuration: one small dataclass, saved beside the run as
``config.json`` so any run can be repeated from its folder, and the learning-rate schedule
it implies."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")
#: what a run learns: FER2013's seven labels, or FER+'s eight classes from the crowd votes
TASKS = ("fer2013", "ferplus")
#: training precision policies; exports are always made from float32 weights
PRECISIONS = ("float32", "mixed_bfloat16")
@dataclass
class TrainConfig:
    data: str
    out: str
    model: str = "vgg_s2"
    epochs: int = 60
    batch_size: int = 64
    steps_per_epoch: int | None = None
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    balance_power: float = 0.0
    class_weights: bool = False
    augment: bool = True
    patience: int = 15
    prior_correction: bool = True
    seed: int = 1
    ferplus: str | None = None
    ferplus_weight: float = 0.5
    task: str = "fer2013"
    teacher: str | list[str] | None = None  # a model, or an ensemble's members
    distill_weight: float = 0.7
    distill_temperature: float = 2.0
    teacher_views: int = 0  # fixed views an image, each scored by the teacher; 0: the image
    init_from: str | None = None
    optimizer: str = "adamw"
    momentum: float = 0.9
    ema: float = 0.0  # momentum of the weights' moving average; 0: none
    precision: str = "float32"
    limit: int | None = None
    cache_dir: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch size must be at least 1")
        if not 0.0 <= self.balance_power <= 1.0:
            raise ConfigError("--balance-power must lie in [0, 1] (0 = even classes, 1 = as is)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("--label-smoothing must lie in [0, 1)")
        if self.learning_rate <= 0:
            raise ConfigError("--lr must be positive")
        if not 0.0 <= self.ferplus_weight <= 1.0:
            raise ConfigError("--ferplus-weight must lie in [0, 1]")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError("--ema must lie in [0, 1) (0: no moving average; 0.999 is usual)")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.task not in TASKS:
            raise ConfigError(f"--task must be one of {', '.join(TASKS)}")
        if self.task == "ferplus" and not self.ferplus:
            raise ConfigError("--task ferplus learns the FER+ votes: pass --ferplus "
                              "fer2013new.csv")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ConfigError("--distill-weight must lie in [0, 1]")
        if self.distill_temperature <= 0:
            raise ConfigError("--distill-temperature must be positive")
        if self.teacher_views and (self.teacher_views < 2 or not self.teacher):
            raise ConfigError("--teacher-views needs a --teacher and at least 2 views (the "
                              "image and one augmented view); 0 scores the image alone")
        if self.teacher_views and not self.augment:
            raise ConfigError("--teacher-views makes augmented views: it cannot go with "
                              "--no-augment")
        if self.teacher:  # a missing teacher or source fails before the run starts
            from .distill import check_teachers

            check_teachers(self.teacher)
        if self.init_from:
            from .warm_start import source_path

            source_path(self.init_from)
        if self.ferplus and self.limit and self.task == "fer2013":
            raise ConfigError("--ferplus needs the full training split; drop --limit")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"{path}: not a readable run config ({exc})") from None


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak over the planned epochs."""
    if epoch < cfg.warmup_epochs:
        return cfg.learning_rate * (epoch + 1) / (cfg.warmup_epochs + 1)
    span = max(cfg.epochs - cfg.warmup_epochs, 1)
    progress = min((epoch - cfg.warmup_epochs) / span, 1.0)
    return cfg.learning_rate * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))
