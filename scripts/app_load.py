"""Load test of the app: several clients send the same photo at once, after a burst of odd
uploads, and every answer must arrive whole while the server's memory returns to baseline.

``python scripts/app_load.py`` (``make app-load``) starts ``emotion-edge app`` on a free
localhost port in a child process, then:

1. warms it up: each odd upload once and two photo requests per client (models load,
   decoders import);
2. reads the server's resident memory (RSS, from ``/proc``): the baseline;
3. sends ``--bursts`` rounds of odd uploads (a 49-megapixel PNG, a 64-megapixel one that
   must be refused, a large noisy JPEG, a truncated JPEG, text named ``.png``, a 1x1 pixel,
   16-bit, RGBA and CMYK images) and reads RSS again;
4. runs ``--clients`` clients x ``--requests`` requests of the same photo through
   ``gradio_client`` (``/predict``), each answer's image downloaded and decoded, and reads
   RSS once more.

An error is a request that raised (a failed download included), or a photo answer without a
face or without a readable image; an odd upload answered with a message is fine. Prints the
figures (``--json`` for a script) and exits 1 when there was an error or RSS after the run is
more than ``--max-growth-mb`` above the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "app" / "examples" / "nasa_astronaut_class.jpg"


@dataclass
class LoadReport:
    """What one run measured."""

    clients: int
    requests_per_client: int
    photo: str
    backend: str
    requests: int = 0
    errors: int = 0
    warmup_errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    odd_uploads: int = 0
    odd_unanswered: int = 0
    seconds: float = 0.0
    rss_baseline_mb: float = 0.0
    rss_after_odd_mb: float = 0.0
    rss_after_load_mb: float = 0.0
    rss_peak_mb: float = 0.0

    @property
    def growth_mb(self) -> float:
        return max(self.rss_after_odd_mb, self.rss_after_load_mb) - self.rss_baseline_mb


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, models_dir: str | None) -> subprocess.Popen:
    """``emotion-edge app`` on ``port`` in a child process, once it answers HTTP."""
    import urllib.request

    command = [sys.executable, "-m", "emotion_edge", "app", "--port", str(port),
               "--report", os.devnull]
    if models_dir:
        command += ["--models-dir", models_dir]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited ({server.returncode}): {server.stderr.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the app did not answer within 180 s")


def odd_uploads(folder: Path) -> list[Path]:
    """Unusual but plausible uploads, written into ``folder``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    files = {
        "huge_flat.png": lambda p: Image.new("RGB", (7000, 7000), (90, 120, 150)).save(p),
        "too_many_pixels.png": lambda p: Image.new("L", (8000, 8000), 128).save(p),
        "noisy.jpg": lambda p: Image.fromarray(
            rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(p, quality=90),
        "one_pixel.png": lambda p: Image.new("RGB", (1, 1), (255, 0, 0)).save(p),
        "sixteen_bit.png": lambda p: Image.fromarray(
            rng.integers(0, 65535, (600, 800), dtype=np.uint16)).save(p),
        "transparent.png": lambda p: Image.open(PHOTO).convert("RGBA").save(p),
        "cmyk.jpg": lambda p: Image.open(PHOTO).convert("CMYK").save(p),
        "not_an_image.png": lambda p: p.write_text("just some text\n" * 100),
        "truncated.jpg": lambda p: p.write_bytes(PHOTO.read_bytes()[:20_000]),
    }
    paths = []
    for name, write in files.items():
        path = folder / name
        write(path)
        paths.append(path)
    return paths


def _client(url: str) -> object:
    from gradio_client import Client

    return Client(url, verbose=False)


def photo_request(client, photo: Path, backend: str, detector: str) -> str | None:
    """One ``/predict`` of ``photo``: None if it came back whole, else what went wrong."""
    from gradio_client import handle_file
    from PIL import Image

    try:
        image, _, status, details = client.predict(handle_file(str(photo)), backend,
                                                   detector, api_name="/predict")
        if not image or "error" in details or not details.get("faces"):
            return f"answer without a face: {status}"
        with Image.open(image) as decoded:
            decoded.load()
    except Exception as exc:  # noqa: BLE001  counted and shown, the run goes on
        return f"{type(exc).__name__}: {exc}"
    return None


def odd_request(client, path: Path, backend: str, detector: str) -> str | None:
    """One odd upload: None if the app answered (an image or a message), else the error."""
    from gradio_client import handle_file

    try:
        client.predict(handle_file(str(path)), backend, detector, api_name="/predict")
    except Exception as exc:  # noqa: BLE001
        return f"{path.name}: {type(exc).__name__}: {exc}"
    return None


class PeakSampler:
    """Samples a process's RSS every 0.2 s in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def settled_rss(pid: int, wait_s: float = 3.0) -> float:
    """RSS once the server has had ``wait_s`` seconds to finish and free what it holds."""
    time.sleep(wait_s)
    return rss_mb(pid)


def run_clients(clients: list, work: Callable[[object, int], str | None],
                count: int) -> list[str]:
    """``count`` calls of ``work(client, i)`` per client, clients in parallel; the errors.
    ``i`` counts on across clients: client k makes calls ``k * count`` to ``k * count +
    count - 1``."""
    def one_client(k: int) -> list[str]:
        calls = range(k * count, (k + 1) * count)
        return [e for i in calls if (e := work(clients[k], i)) is not None]

    with ThreadPoolExecutor(len(clients)) as pool:
        return [e for errors in pool.map(one_client, range(len(clients))) for e in errors]


def load_test(args: argparse.Namespace) -> LoadReport:
    report = LoadReport(args.clients, args.requests, Path(args.photo).name, args.backend)
    port = free_port()
    server = start_server(port, args.models_dir)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            odd = odd_uploads(Path(tmp))
            clients = [_client(f"http://127.0.0.1:{port}/") for _ in range(args.clients)]
            photo = Path(args.photo)

            def ask(client, _: int) -> str | None:
                return photo_request(client, photo, args.backend, args.detector)

            warm = [odd_request(clients[0], path, args.backend, args.detector) for path in odd]
            warm += run_clients(clients, ask, 2)
            report.rss_baseline_mb = settled_rss(server.pid)
            with PeakSampler(server.pid) as sampler:
                start = time.perf_counter()
                per_client = -(-args.bursts * len(odd) // len(clients))  # every kind sent
                odd_errors = run_clients(
                    clients,
                    lambda c, i: odd_request(c, odd[i % len(odd)], args.backend, args.detector),
                    per_client)
                report.odd_uploads = per_client * len(clients)
                report.odd_unanswered = len(odd_errors)
                report.rss_after_odd_mb = settled_rss(server.pid)
                errors = run_clients(clients, ask, args.requests)
                report.seconds = time.perf_counter() - start
            report.rss_after_load_mb = settled_rss(server.pid)
            report.rss_peak_mb = sampler.peak
    finally:
        server.terminate()
        server.wait(timeout=30)
    report.requests = args.clients * args.requests
    report.errors = len(errors)
    report.warmup_errors = len([w for w in warm if w])
    report.error_samples = sorted(set(errors + odd_errors + warm) - {None})[:5]
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--bursts", type=int, default=4,
                        help="rounds of odd uploads before the load (default: 4)")
    parser.add_argument("--photo", default=str(PHOTO), help="the photo every request sends")
    parser.add_argument("--backend", default="TFLite int8", help="a title from the app's menu")
    parser.add_argument("--detector", default="blazeface-pyramid", help="a detector's name")
    parser.add_argument("--models-dir", help="serve these models (default: the bundled ones)")
    parser.add_argument("--max-growth-mb", type=float, default=64.0,
                        help="RSS above the baseline allowed after the run (default: 64)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.bursts < 0:
        parser.error("--clients and --requests must be at least 1, --bursts at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    args = parse_args(argv)
    report = load_test(args)
    passed = (report.errors == report.warmup_errors == report.odd_unanswered == 0
              and report.growth_mb <= args.max_growth_mb)
    if args.json:
        print(json.dumps({**asdict(report), "growth_mb": round(report.growth_mb, 1),
                          "passed": passed}, indent=2))
    else:
        print(f"{report.clients} clients x {report.requests_per_client} requests of "
              f"{report.photo} on {report.backend} in {report.seconds:.1f} s: "
              f"{report.errors} errors of {report.requests}")
        print(f"{report.odd_uploads} odd uploads: {report.odd_unanswered} unanswered; "
              f"warm-up: {report.warmup_errors} errors")
        print(f"server RSS: baseline {report.rss_baseline_mb:.0f} MiB, after odd uploads "
              f"{report.rss_after_odd_mb:.0f} MiB, after the load "
              f"{report.rss_after_load_mb:.0f} MiB, peak {report.rss_peak_mb:.0f} MiB "
              f"(growth {report.growth_mb:+.0f} MiB, allowed {args.max_growth_mb:.0f})")
        for sample in report.error_samples:
            print(f"  e.g. {sample}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
