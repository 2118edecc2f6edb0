"""Where joblib's work runs: local processes or threads, or a dask.distributed cluster.

skcorr's parallel loops are plain ``joblib.Parallel`` calls, so any joblib backend
runs them; :func:`dask_backend` connects to a dask scheduler and makes it the backend
(dask is an optional dependency: ``pip install "dask[distributed]"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import numbers
import threading

import joblib

__all__ = ["chunks", "dask_backend"]


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
        When ``address`` is empty, dask.distributed is not installed, or no scheduler
        answers at ``address`` within ``timeout`` seconds (also when a server there
        accepts the connection but does not speak dask).
    """
    if not isinstance(address, str) or not address.strip() or any(
            c.isspace() for c in address):
        raise ValueError(
            f"address must be a dask scheduler's address such as 'tcp://10.0.0.5:8786' (as "
            f"`dask scheduler` prints it), got {address!r}."
        )
    if (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
            or not 0 < timeout < math.inf):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}.")
    try:
        from distributed import Client
    except ImportError as exc:
        raise ValueError(
            "A dask scheduler was given but dask.distributed is not installed; install it "
            "with pip install 'dask[distributed]', or run without a scheduler."
        ) from exc
    no_answer = (
        f"No dask scheduler answers at {address!r} within {timeout:g} s; start one with "
        "`dask scheduler` (and workers with `dask worker ADDRESS`), check the address "
        "and the firewall, or run without a scheduler to use local processes."
    )
    _handshake(address, timeout, no_answer)
    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(no_answer) from exc
    try:
        with joblib.parallel_config(backend="dask"):
            yield client
    finally:
        client.close()


def _handshake(address: str, timeout: float, no_answer: str) -> None:
    """Open and close one connection to ``address`` within ``timeout`` seconds, or raise.

    distributed's own timeout covers opening the TCP connection, not the handshake that
    follows: a server that accepts connections but does not speak dask keeps a Client
    waiting for ever. The attempt runs in an event loop of its own, in a thread (so
    that it works where a loop is already running, as in Jupyter), and is cancelled
    at the deadline, which closes its socket.
    """
    from distributed.comm import connect

    async def attempt():
        comm = await connect(address, timeout=f"{timeout}s")
        await comm.close()

    outcome: list = []

    def run():
        try:
            asyncio.run(asyncio.wait_for(attempt(), timeout))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome.append(exc)

    # A daemon thread: should the cancellation itself hang, it cannot hold up the exit.
    thread = threading.Thread(target=run, name="skcorr-dask-handshake", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    error = outcome[0] if outcome else TimeoutError()
    if error is None:
        return
    if isinstance(error, (OSError, TimeoutError, asyncio.TimeoutError)):
        raise ValueError(no_answer) from error
    raise ValueError(
        f"The server at {address!r} answered, but not as a dask scheduler "
        f"({type(error).__name__}: {error}); give the address `dask scheduler` prints."
    ) from error


def chunks(items, n_jobs):
    """``items`` in chunks for ``n_jobs`` joblib workers: about eight per worker, so that
    the load balances; one item per chunk when the work is sequential."""
    n_workers = joblib.effective_n_jobs(n_jobs)
    size = 1 if n_workers == 1 else max(1, -(-len(items) // (8 * n_workers)))
    return [items[start:start + size] for start in range(0, len(items), size)]
