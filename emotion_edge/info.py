"""``emotion-edge info``: the version, which engines are installed, and the bundled models."""

from __future__ import annotations

import argparse
import json
import platform

from . import __version__

ENGINE_DISTRIBUTIONS = ("ai-edge-litert", "onnxruntime", "tensorflow-cpu", "tensorflow", "keras",
                        "tf2onnx", "onnx", "gradio", "matplotlib", "opencv-python-headless",
                        "numpy", "pillow")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--formats", action="store_true",
                   help="also list every export format and precision (the format table)")
    p.add_argument("--models", action="store_true",
                   help="also list the trainable architectures with their cost (needs [train])")


def collect(with_architectures: bool = False, with_formats: bool = False) -> dict:
    from .data.versions import installed_version
    from .runtime.bundled import bundled_models
    from .runtime.formats import BACKENDS

    files, models = {}, {}
    for name, paths in bundled_models().items():
        sidecars = {path: _read(path) for path in paths}
        for path, meta in sidecars.items():
            files[path.name] = _file_entry(name, path, meta)
        models[name] = _model_entry(paths, sidecars)
    info = {
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "engines": {name: {"available": b.available(), "extra": b.extra, "module": b.module}
                    for name, b in BACKENDS.items()},
        "packages": {d: v for d in ENGINE_DISTRIBUTIONS if (v := installed_version(d))},
        "models": models,
        "bundled_models": files,
    }
    if with_formats:
        from .runtime.formats import FORMATS

        info["formats"] = [{"format": f.format, "precision": f.precision, "suffix": f.suffix,
                            "layout": f.layout, "companions": list(f.companions),
                            "backend": f.backend, "extra": f.engine.extra,
                            "available": f.engine.available(), "title": f.title,
                            "description": f.description, "exportable": bool(f.exporter),
                            "calibrated": f.calibrated,
                            "parity": f.parity.describe() if f.parity else None}
                           for f in FORMATS]
    if with_architectures:
        from .train.models import build_model, describe_models, model_cost

        info["architectures"] = {}
        for name, summary in describe_models().items():
            cost = model_cost(build_model(name))
            info["architectures"][name] = {"summary": summary, "parameters": cost.parameters,
                                           "macs": cost.macs}
    return info


def _read(path) -> dict:
    from .runtime.errors import EmotionEdgeError
    from .runtime.sidecar import read_sidecar

    try:
        return read_sidecar(path)
    except EmotionEdgeError as exc:
        return {"error": str(exc)}


def _file_entry(name: str, path, meta: dict) -> dict:
    """One bundled artifact: its size (all its files: an IR's .xml + .bin), precision and
    measured PrivateTest accuracy with the labels it was measured on."""
    from .runtime.bundled import accuracy_labels
    from .runtime.formats import format_for_path

    accuracy = meta.get("accuracy") if isinstance(meta.get("accuracy"), dict) else {}
    return {"model": name, "bytes": format_for_path(path).size_bytes(path),
            "precision": meta.get("precision"), "accuracy": accuracy.get("privatetest"),
            "accuracy_labels": accuracy_labels(meta) if "privatetest" in accuracy else None}


def _model_entry(paths: list, sidecars: dict) -> dict:
    """One bundled model (stem): its classes and the accuracy its source (``.keras``, else
    its first artifact) records, by the labels each figure was measured on."""
    from .runtime.bundled import accuracy_by_labels

    source = next((sidecars[p] for p in paths if p.name.endswith(".keras")), sidecars[paths[0]])
    labels = source.get("labels") or []
    return {"classes": len(labels), "labels": list(labels),
            "accuracy": accuracy_by_labels(source), "artifacts": [p.name for p in paths]}


def run(args: argparse.Namespace) -> int:
    info = collect(args.models, args.formats)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"emotion-edge {info['version']} (Python {info['python']}, {info['platform']})")
    print("engines:")
    for name, e in info["engines"].items():
        state = ("installed" if e["available"]
                 else f"not installed: pip install 'emotion-edge[{e['extra']}]'")
        print(f"  {name:<12} {state}")
    _print_bundled(info["models"], info["bundled_models"])
    if "formats" in info:
        print("formats (emotion-edge export --to FORMAT --precision PRECISION):")
        for f in info["formats"]:
            files = "".join(f" + {ext}" for ext in f["companions"])
            print(f"  {f['format']:<8} {f['precision']:<8} *{f['suffix'] + files:<25} "
                  f"{f['backend']:<12} {f['parity'] or 'source':<26} {f['description']}")
    if "architectures" in info:
        print("architectures (emotion-edge train --model NAME):")
        for name, arch in info["architectures"].items():
            print(f"  {name:<14} {arch['parameters']:>9,} parameters {arch['macs']:>12,} MACs  "
                  f"{arch['summary']}")
    return 0


def _print_bundled(models: dict, files: dict) -> None:
    from .runtime.bundled import ACCURACY_SPLITS

    print("bundled models (--model NAME):")
    if not models:
        print("  (none)")
    for name, model in models.items():
        print(f"  {name}: {model['classes']} classes ({', '.join(model['labels'])})")
        for on, splits in model["accuracy"].items():
            figures = ", ".join(f"{ACCURACY_SPLITS[split]} {100 * value:.2f}%"
                                for split, value in splits.items())
            print(f"    accuracy on {on} labels: {figures}")
    print("bundled artifacts:")
    for file, m in files.items():
        acc = (f"  PrivateTest {m['accuracy']:.4f} ({m['accuracy_labels']} labels)"
               if m["accuracy"] is not None else "")
        print(f"  {file:<28} {m['bytes'] / 1024:8.1f} KiB  {m['precision'] or '?':<8}{acc}")
