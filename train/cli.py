"""``emotion-edge train``: train a model on FER2013 into a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runtime.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .config import TrainConfig

    d = TrainConfig(data="", out="")
    p.add_argument("--data", required=True, help="FER2013 CSV (fer2013.csv or .csv.gz)")
    p.add_argument("--model", default=d.model, help=f"model name (default {d.model}); "
                   "see 'emotion-edge info --models'")
    p.add_argument("--out", help="run folder (default runs/MODEL)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="batches per epoch (default: training images / batch size)")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--balance-power", type=float, default=d.balance_power,
                   help="classes drawn in proportion to count**P: 0 even (default), 1 as is")
    p.add_argument("--class-weights", action="store_true",
                   help="weight the loss by inverse class frequency (use with --balance-power 1)")
    p.add_argument("--ferplus", metavar="CSV",
                   help="FER+ votes (fer2013new.csv): mix their distribution into the targets "
                   "(with --task ferplus: learn them)")
    p.add_argument("--ferplus-weight", type=float, default=d.ferplus_weight,
                   help="weight of the FER+ votes in the targets (default %(default)s)")
    p.add_argument("--task", choices=("fer2013", "ferplus"), default=d.task,
                   help="fer2013: its seven labels (default); ferplus: FER+'s eight classes "
                   "learnt from the crowd's vote distribution (needs --ferplus)")
    p.add_argument("--teacher", metavar="MODEL", action="append",
                   help="distil from this model: its probabilities (averaged with the mirror "
                   "image's, computed once) are mixed into the targets; repeat it to distil "
                   "from an ensemble (the members' probabilities averaged)")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help="weight of the teacher in the targets (default %(default)s)")
    p.add_argument("--distill-temperature", type=float, default=d.distill_temperature,
                   help="softening of the teacher's probabilities (default %(default)s)")
    p.add_argument("--teacher-views", type=int, default=d.teacher_views, metavar="K",
                   help="consistent teaching: K fixed views of each training image (the "
                        "image and K-1 augmented ones, made once), each scored by the "
                        "teacher; the student sees a view with the teacher's probabilities "
                        "for that view, and training only mirrors (default 0: the teacher "
                        "scores the image alone and training augments freely)")
    p.add_argument("--init-from", metavar="MODEL",
                   help="start from this model's weights (a .keras file or a bundled name, "
                   "same architecture): every layer whose shapes match is copied, a head of "
                   "another class count starts fresh (fine-tuning, e.g. accurate -> ferplus)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default=d.optimizer,
                   help="AdamW, or SGD with Nesterov momentum (default %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    p.add_argument("--ema", type=float, default=d.ema, metavar="MOMENTUM",
                   help="keep an exponential moving average of the weights with this momentum "
                   "(e.g. 0.999): PublicTest is scored, and the best checkpoint and the "
                   "model saved, with the averaged weights (default 0: off)")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default=d.precision,
                   help="training precision; mixed_bfloat16 is about twice as fast on CPUs "
                   "with avx512_bf16 (the saved model is float32 either way)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--no-prior-correction", action="store_true",
                   help="do not fold a PublicTest-picked class-prior correction into the logits")
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--limit", type=int, help="use at most N images per split (smoke tests)")
    p.add_argument("--cache-dir",
                   help="where decoded data is cached (default ~/.cache/emotion-edge)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=JSON",
                   help="extra builder argument, e.g. widths=[32,64,128]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")


def _model_kwargs(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--model-arg {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"--model-arg {pair!r}: value must be JSON, "
                              "e.g. 64 or [32,64]") from None
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def _teacher(paths: list[str] | None) -> str | list[str] | None:
    """One teacher as a path, several (an ensemble) as a list."""
    if not paths:
        return None
    paths = [str(Path(p)) for p in paths]
    return paths[0] if len(paths) == 1 else paths


def run(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .models import model_names
    from .trainer import train

    if args.model not in model_names():
        raise ConfigError(f"unknown model {args.model!r}; choose one of: "
                          f"{', '.join(model_names())}")
    cfg = TrainConfig(
        data=str(Path(args.data)), out=args.out or f"runs/{args.model}", model=args.model,
        epochs=args.epochs, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.lr, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, balance_power=args.balance_power,
        class_weights=args.class_weights, augment=not args.no_augment,
        prior_correction=not args.no_prior_correction, patience=args.patience, seed=args.seed,
        ferplus=args.ferplus, ferplus_weight=args.ferplus_weight, optimizer=args.optimizer,
        momentum=args.momentum, ema=args.ema, precision=args.precision, task=args.task,
        teacher=_teacher(args.teacher),
        init_from=args.init_from, distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature, teacher_views=args.teacher_views,
        limit=args.limit, cache_dir=args.cache_dir, model_kwargs=_model_kwargs(args.model_arg),
    )
    metrics = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"PublicTest accuracy {metrics['publictest']['accuracy']:.4f}, "
          f"PrivateTest accuracy {metrics['privatetest']['accuracy']:.4f} -> {cfg.out}")
    return 0
