"""Where joblib's work runs: local processes or threads, or a dask.distributed cluster.

skcorr's parallel loops are plain ``joblib.Parallel`` calls, so any joblib backend
runs them; :func:`dask_backend` connects to a dask scheduler and makes it the backend
(dask is an optional dependency: ``pip install "dask[distributed]"``). Under it, feature
extraction is mapped over the images on the workers (:func:`dask_client` tells the
feature transformers where they run) and :func:`chunks` sizes the work from the
cluster's threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import numbers
import os
import shutil
import sys
import tempfile
import threading

import joblib

__all__ = ["SchedulerLost", "chunks", "dask_backend", "dask_client", "parallel",
           "reuse_freed_memory", "scratch_folder"]

#: Seconds between two checks that the scheduler still answers, during the work.
HEARTBEAT_INTERVAL = 5.0

#: Seconds the work has, once the scheduler is found lost and the futures cancelled, to
#: notice; then the thread running it is interrupted.
ABANDON_GRACE = 5.0

#: Chunks under a dask scheduler: about this many per worker thread, and no chunk holds
#: more than 1 / MIN_CHUNKS of the items, so that the progress bar moves in small steps.
CHUNKS_PER_THREAD = 8
MIN_CHUNKS = 100


class SchedulerLost(ValueError):
    """The dask scheduler stopped answering, or its connection was lost, during the work."""


def _check_seconds(name: str, value) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 < value < math.inf):
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}.")
    return float(value)


@contextlib.contextmanager
def dask_backend(address: str, timeout: float = 5.0, wait_for_workers: float = 30.0,
                 heartbeat: float = 30.0):
    """Run joblib work inside the block on the dask cluster whose scheduler is at ``address``.

    Every wait has a time limit: connecting (``timeout``), the first worker
    (``wait_for_workers``) and, during the work, the scheduler's answer to a check made
    every few seconds (``heartbeat``). A scheduler that dies or stops answering during
    the work ends the block with :class:`SchedulerLost`, which names the address.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://10.0.0.5:8786"`` (as ``dask scheduler``
        prints it).
    timeout : float, default=5.0
        Seconds to wait for the scheduler to answer.
    wait_for_workers : float, default=30.0
        Seconds to wait for at least one worker to join the scheduler (at the start, and
        whenever joblib finds the cluster without workers).
    heartbeat : float, default=30.0
        Seconds within which the scheduler must answer each check during the work (a
        check every few seconds); a scheduler that does not is reported lost.

    Yields
    ------
    client : distributed.Client
        The connection, closed when the block ends.

    Raises
    ------
    ValueError
        When ``address`` is empty, dask.distributed is not installed, no scheduler
        answers at ``address`` within ``timeout`` seconds (also when a server there
        accepts the connection but does not speak dask), or no worker joins within
        ``wait_for_workers`` seconds.
    SchedulerLost
        (a ValueError) when the connection is lost or the scheduler stops answering
        inside the block.
    """
    if not isinstance(address, str) or not address.strip() or any(
            c.isspace() for c in address):
        raise ValueError(
            f"address must be a dask scheduler's address such as 'tcp://10.0.0.5:8786' (as "
            f"`dask scheduler` prints it), got {address!r}."
        )
    timeout = _check_seconds("timeout", timeout)
    wait_for_workers = _check_seconds("wait_for_workers", wait_for_workers)
    heartbeat = _check_seconds("heartbeat", heartbeat)
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
    watchdog = _Watchdog(client, heartbeat)
    # Once the connection is lost, SchedulerLost says so in one line: distributed's
    # own reports of it (reconnection attempts, their tracebacks) are dropped.
    quiet = _QuietWhenLost(client, watchdog)
    logger = logging.getLogger("distributed.client")
    logger.addFilter(quiet)
    try:
        _wait_for_workers(client, address, wait_for_workers)
        watchdog.owner = threading.get_ident()
        watchdog.start()
        with joblib.parallel_config(backend="dask", wait_for_workers_timeout=wait_for_workers):
            yield client
    except BaseException as exc:
        lost = watchdog.lost or (_is_disconnection(exc) and client.status != "running")
        if lost:
            how = (f"it did not answer within {heartbeat:g} s" if watchdog.lost
                   else "the connection was closed")
            raise SchedulerLost(
                f"Lost the dask scheduler at {address!r} during the work ({how}); check "
                "that it is running (restart it and its workers), then run again: with a "
                "shared cache folder (--memory, memory=), features already computed are "
                "read, not computed again."
            ) from exc
        if isinstance(exc, TimeoutError) and "has no worker after" in str(exc):
            raise ValueError(_no_worker(address, wait_for_workers, "during the work")) from exc
        raise
    finally:
        watchdog.stop()
        quiet.closing = True
        with contextlib.suppress(Exception):
            client.close(timeout=min(timeout, 5.0))
        logger.removeFilter(quiet)


def _no_worker(address: str, seconds: float, when: str) -> str:
    return (f"The dask scheduler at {address!r} had no worker for {seconds:g} s {when}; "
            f"start workers with `dask worker {address}`, or wait longer for them "
            "(skcorr --scheduler-wait SECONDS, dask_backend(wait_for_workers=...)).")


def _wait_for_workers(client, address: str, seconds: float) -> None:
    try:
        client.wait_for_workers(1, timeout=seconds)
    except TimeoutError as exc:
        raise ValueError(_no_worker(address, seconds, "after connecting")) from exc


def _is_disconnection(exc: BaseException) -> bool:
    """Whether ``exc`` is what distributed raises when the scheduler goes away."""
    from concurrent.futures import CancelledError

    from distributed.comm import CommClosedError

    return isinstance(exc, (CancelledError, asyncio.CancelledError, CommClosedError,
                            TimeoutError, OSError))


class _Abandoned(Exception):
    """Raised in the thread that waits on a scheduler found lost (see _Watchdog)."""


class _QuietWhenLost(logging.Filter):
    """Drops distributed's log records once the connection is lost or being closed."""

    def __init__(self, client, watchdog):
        super().__init__()
        self.client, self.watchdog, self.closing = client, watchdog, False

    def filter(self, record):
        return not (self.closing or self.watchdog.lost or self.client.status != "running")


class _Watchdog:
    """Asks the scheduler for its identity every few seconds during the work; when no
    answer comes within ``heartbeat`` seconds (a frozen or unreachable scheduler, which
    distributed would wait on for ever), marks the connection ``lost``, cancels every
    future the work waits on (as distributed does when the connection closes) and
    closes the client."""

    def __init__(self, client, heartbeat: float):
        self.client, self.heartbeat = client, heartbeat
        self.lost = False
        self.owner = None  # the thread running the block, while it runs
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skcorr-dask-heartbeat",
                                        daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        with self.lock:
            self.owner = None
        self._stop.set()

    def _run(self):
        interval = min(HEARTBEAT_INTERVAL, self.heartbeat)
        while not self._stop.wait(interval):
            try:
                self.client.sync(self.client.scheduler.identity,
                                 callback_timeout=self.heartbeat)
            except Exception:  # noqa: BLE001 - any failure to answer is a lost scheduler
                if self._stop.is_set():
                    return
                self.lost = True
                self._abandon()
                return

    def _abandon(self):
        client = self.client

        def cancel_all():
            for state in list(client.futures.values()):
                state.cancel(reason="scheduler-unresponsive",
                             msg="The scheduler stopped answering.")

        with contextlib.suppress(Exception):
            client.loop.add_callback(cancel_all)
        # Those waiting on the futures see them cancelled before the client closes.
        if not self._stop.wait(1.0):
            with contextlib.suppress(Exception):
                client.close(timeout=5.0)
        # Some waits never see the cancellation (joblib polls its own job list): the
        # thread inside the block is interrupted, as Ctrl-C would.
        if not self._stop.wait(ABANDON_GRACE):
            with self.lock:
                if self.owner is not None:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self.owner), ctypes.py_object(_Abandoned))


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


def dask_client():
    """The dask client that joblib's active backend runs on, or None when it is not dask.

    Inside a dask task it is None too: the work is already spread, and nested work
    runs where it is. The first time it finds a client, it prepares the cluster's
    workers for skcorr's work (:func:`reuse_freed_memory` on each, also on those that
    join later).

    Returns
    -------
    client : distributed.Client or None
        Set by :func:`dask_backend` or ``joblib.parallel_config(backend="dask")``.
    """
    from joblib.parallel import get_active_backend

    if _in_dask_task():
        reuse_freed_memory()  # work of ours on a worker the client did not prepare
        return None
    backend, _ = get_active_backend()
    if type(backend).__name__ != "DaskDistributedBackend":
        return None
    client = getattr(backend, "client", None)
    if client is not None and client.id not in _PREPARED:
        _prepare_workers(client)
    return client


#: glibc's mallopt parameters: the free memory at the top of the heap from which it is
#: given back to the system, and the size from which a block is mapped afresh (mmap).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: The mmap threshold set on dask workers, glibc's own ceiling for its adaptive one on
#: 64-bit systems, and the trim threshold glibc pairs with it (twice as large).
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD

_REUSING = False  # whether reuse_freed_memory changed this process's allocator
_PREPARED: set = set()  # ids of the clients whose workers were prepared


def reuse_freed_memory() -> bool:
    """Let this process reuse freed blocks of up to 32 MiB instead of mapping fresh pages.

    dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_`` set, so that they
    give freed memory back to the system at once. Setting it also turns off glibc's
    adaptive mmap threshold: every block over 128 KiB, such as each activation of a
    forward pass, is then mapped afresh and its pages faulted in, which makes convnet
    features twice as slow on a worker as in a plain process. This sets both
    thresholds where glibc's adaptive ones end (32 MiB and 64 MiB): freed blocks are
    reused, and no more than 64 MiB of free memory is kept at the top of the heap.

    Only in a Linux process with ``MALLOC_TRIM_THRESHOLD_`` in its environment (a dask
    worker started by a nanny); elsewhere nothing changes. skcorr calls it on every
    worker of a cluster it sends work to.

    Returns
    -------
    changed : bool
        Whether the allocator's setting is now raised (by this or an earlier call).
    """
    global _REUSING
    if _REUSING:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _REUSING = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
                and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1)
    return _REUSING


def _prepare_workers(client) -> None:
    """Call :func:`reuse_freed_memory` on every worker of ``client``'s cluster, now and
    on those that join later (a worker plugin)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class ReuseFreedMemory(WorkerPlugin):
        name = "skcorr-reuse-freed-memory"

        def setup(self, worker):
            reuse_freed_memory()

    client.register_plugin(ReuseFreedMemory())
    _PREPARED.add(client.id)


def _in_dask_task() -> bool:
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def parallel(n_jobs, **kwargs) -> joblib.Parallel:
    """The ``joblib.Parallel`` of skcorr's own loops (``kwargs`` are its other arguments).

    Inside a task of a dask cluster (a fit of a grid search sent to a worker, say) the
    loop runs in that task, one item after the other: joblib would send each item to the
    cluster again, a round trip per item, while the work is already spread.
    """
    if _in_dask_task():
        with joblib.parallel_config(backend="sequential"):
            return joblib.Parallel(n_jobs=1, **kwargs)
    return joblib.Parallel(n_jobs=n_jobs, **kwargs)


def chunks(items, n_jobs):
    """``items`` in chunks for joblib's workers, so that the load balances.

    Locally, about eight chunks per worker of ``n_jobs`` (one item per chunk when the
    work is sequential). Under a dask scheduler ``n_jobs`` is ignored, as joblib's dask
    backend does: about eight chunks per thread of the cluster, and none larger than
    1/100 of the items, so that the progress bar moves in small steps.
    """
    n = len(items)
    client = dask_client()
    if client is not None:
        threads = max(1, sum(client.nthreads().values()))
        size = max(1, min(-(-n // (CHUNKS_PER_THREAD * threads)), -(-n // MIN_CHUNKS)))
    else:
        n_workers = joblib.effective_n_jobs(n_jobs)
        size = 1 if n_workers == 1 else max(1, -(-n // (CHUNKS_PER_THREAD * n_workers)))
    return [items[start:start + size] for start in range(0, n, size)]


@contextlib.contextmanager
def scratch_folder(prefix: str = "skcorr-"):
    """A temporary folder (e.g. a feature cache for one command), removed at the end.

    Under a dask scheduler the workers write into the same path; on machines that do
    not share the client's disk each worker has made a folder of its own there, so the
    workers remove it too.

    Parameters
    ----------
    prefix : str, default="skcorr-"
        The start of the folder's name.

    Yields
    ------
    folder : str
        The folder's path.
    """
    client = dask_client()
    folder = None
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as folder:
            yield folder
    finally:
        if client is not None and folder is not None and client.status == "running":
            with contextlib.suppress(Exception):  # a lost cluster has nothing to remove
                client.run(shutil.rmtree, folder, True)
