"""Where joblib's work runs: local processes or threads, or a dask.distributed cluster.

skcorr's parallel loops are plain ``joblib.Parallel`` calls, so any joblib backend
runs them; :func:`dask_backend` connects to a dask scheduler and makes it the backend
(dask is an optional dependency: ``pip install "dask[distributed]"``).
"""

from __future__ import annotations

import contextlib

import joblib

__all__ = ["dask_backend"]


@contextlib.contextmanager
def dask_backend(address: str, timeout: float = 5.0):
    """Run joblib work inside the block on the dask cluster whose scheduler is at ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://10.0.0.5:8786"`` (as ``dask scheduler``
        prints it).
    timeout : float, default=5.0
        Seconds to wait for the scheduler to answer.

    Yields
    ------
    client : distributed.Client
        The connection, closed when the block ends.

    Raises
    ------
    ValueError
        When dask.distributed is not installed, or no scheduler answers at ``address``
        within ``timeout`` seconds.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise ValueError(
            "A dask scheduler was given but dask.distributed is not installed; install it "
            "with pip install 'dask[distributed]', or run without a scheduler."
        ) from exc
    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"No dask scheduler answers at {address!r} within {timeout:g} s; start one with "
            "`dask scheduler` (and workers with `dask worker ADDRESS`), check the address "
            "and the firewall, or run without a scheduler to use local processes."
        ) from exc
    try:
        with joblib.parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
