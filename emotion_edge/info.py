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
    from .runtime.errors import EmotionEdgeError
    from .runtime.formats import BACKENDS, format_for_path
    from .runtime.sidecar import read_sidecar

    bundled = {}
    for name, paths in bundled_models().items():
        for path in paths:
            try:
                meta = read_sidecar(path)
            except EmotionEdgeError as exc:
                meta = {"error": str(exc)}
            size = format_for_path(path).size_bytes(path)  # all its files: .xml + .bin
            bundled[path.name] = {"model": name, "bytes": size,
                                  "precision": meta.get("precision"),
                                  "accuracy": meta.get("accuracy", {}).get("privatetest")}
    info = {
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "engines": {name: {"available": b.available(), "extra": b.extra, "module": b.module}
                    for name, b in BACKENDS.items()},
        "packages": {d: v for d in ENGINE_DISTRIBUTIONS if (v := installed_version(d))},
        "bundled_models": bundled,
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
    print("bundled models:")
    if not info["bundled_models"]:
        print("  (none)")
    for file, m in info["bundled_models"].items():
        acc = f"  PrivateTest {m['accuracy']:.4f}" if m["accuracy"] is not None else ""
        print(f"  {file:<28} {m['bytes'] / 1024:8.1f} KiB  {m['precision'] or '?':<8}{acc}")
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
