"""Starting or joining Ray for a batch job, offline and with clear errors.

With no address a local Ray instance is started, sized to this machine (one CPU per core),
without the dashboard and without usage statistics (there may be no internet). With an
address (``host:port``, ``ray://host:port`` or ``auto``) the job joins that cluster; the
address is checked with a plain TCP connection first, because Ray itself retries an address
where nothing listens for minutes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from emotion_edge.runtime.errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)

#: Seconds to wait for a cluster's address to accept a connection.
CONNECT_TIMEOUT_S = 5.0


def require_ray() -> Any:
    """Import Ray (and Ray Data), or say which extra installs it."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            "batch needs Ray Data and pyarrow: pip install 'emotion-edge[ray]'") from None
    return ray


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> float:
    """Join the cluster at ``address``, or start a local Ray with ``num_cpus`` CPUs (default:
    every core). Returns the seconds it took."""
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    settings = {"logging_level": logging.WARNING, "include_dashboard": False}
    if address is None:
        # Ray runs its workers at niceness 15 by default; the actors are this job's work,
        # so they run at the driver's priority, as predict does (override: set the variable).
        os.environ.setdefault("RAY_worker_niceness", "0")
        try:  # "local": a new instance even when another Ray runs on this machine
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **settings)
        except Exception as exc:  # noqa: BLE001 - a node start-up timeout is a bare Exception
            raise ConfigError(f"cannot start a local Ray instance ({exc}); on a busy machine "
                              "try again, or start one with `ray start --head` and pass "
                              "--address") from None
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, **settings)
        except Exception as exc:  # noqa: BLE001 - Ray raises bare Exceptions here too
            raise ConfigError(f"--address {address}: cannot join a Ray cluster there "
                              f"({exc}); a cluster with token authentication (the default of "
                              "`ray start`) also needs RAY_AUTH_MODE=token and its token in "
                              "RAY_AUTH_TOKEN or ~/.ray/auth_token") from None
    seconds = time.perf_counter() - start
    log.info("Ray %s in %.1f s: %s CPUs", "joined" if address else "started", seconds,
             ray.cluster_resources().get("CPU", 0))
    return seconds


def stop_ray() -> None:
    """Shut down (or disconnect from) Ray if this process is connected."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _check_reachable(address: str) -> None:
    if address == "auto":
        return
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected HOST:PORT, ray://HOST:PORT or auto "
                          "(the address `ray start --head` prints)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"--address {address}: nothing answers there ({exc}); start the "
                          "cluster with `ray start --head` or check the address") from None
