"""Faults of issue 23 and the rules that keep their siblings out.

* the feature cache recomputes what it cannot read and never stores what it did not
  compute; its weights digest follows in-place edits of the network;
* SIGTERM ends a command like Ctrl-C;
* a dask scheduler address that does not answer fails within its timeout;
* n_jobs and image_size are bounded;
* the command line checks every argument before it reads data;
* tables are written through symlinks and name their target in errors;
* a multi-frame image is refused;
* long commands show progress bars on stderr, never on stdout.
"""

import contextlib
import functools
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skcorr import ConvColumnExtractor, FeatureMap, keypoint_samples
from skcorr.features._sift import DenseSIFT

REPO = Path(__file__).resolve().parents[1]


def _images(n=2, shape=(40, 48)):
    rng = np.random.default_rng(7)
    return [rng.integers(0, 255, (*shape, 3), dtype=np.uint8) for _ in range(n)]


# --- the feature cache: damaged entries ------------------------------------------------

IMAGES = _images()
KEYPOINTS = np.array([[[5.0, 6.0], [30.0, 20.0]], [[12.0, 33.0], [40.0, 2.0]]])


def _conv(mode, memory=None):
    return ConvColumnExtractor(weights=None, layer="stage3", mode=mode, memory=memory,
                               device="cpu")


def _sift(mode, memory=None):
    return DenseSIFT(mode=mode, radius=6, step=8, bin_size=4, memory=memory)


def _input(mode):
    return keypoint_samples(IMAGES, KEYPOINTS)[0] if mode == "keypoints" else IMAGES


@functools.cache
def _fitted(family, mode):
    """A fitted transformer without a cache and its features (a cold run)."""
    torch.manual_seed(0)
    ext = (_conv if family == "conv" else _sift)(mode).fit()
    return ext, ext.transform(_input(mode))


@pytest.fixture(scope="module")
def fitted():
    return {(family, mode): _fitted(family, mode) for family in ("conv", "sift")
            for mode in ("dense", "global", "keypoints")}


def _assert_same(got, expected):
    """Equal features (a convnet's last bits depend on which images share a batch)."""
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert isinstance(g, FeatureMap)
            np.testing.assert_allclose(g.features, e.features, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(g.xs, e.xs)
            np.testing.assert_array_equal(g.ys, e.ys)
            assert (g.rf_size, g.image_shape, g.bin_size) == (e.rf_size, e.image_shape,
                                                              e.bin_size)
    else:
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _entries(folder) -> list[Path]:
    return sorted(Path(folder).rglob("output.pkl"))


def _damage(path: Path, how):
    kind, arg = how
    data = path.read_bytes()
    if kind == "delete":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncate":
        path.write_bytes(data[: arg % (len(data) + 1)])
    elif kind == "flip" and data:
        buffer = bytearray(data)
        for position, mask in arg:
            buffer[position % len(buffer)] ^= mask
        path.write_bytes(bytes(buffer))
    elif kind == "garbage":
        path.write_bytes(arg)


DAMAGE = st.one_of(
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("empty"), st.none()),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                                        min_size=1, max_size=4)),
    st.tuples(st.just("garbage"), st.binary(max_size=64)),
)


@settings(max_examples=30, deadline=None)
@given(family=st.sampled_from(["conv", "sift"]),
       mode=st.sampled_from(["dense", "global", "keypoints"]),
       damages=st.lists(st.tuples(st.integers(0, 10), DAMAGE), min_size=1, max_size=3))
def test_any_damage_to_any_entry_is_recomputed(family, mode, damages):
    """Issue 23 item 1: a damaged output.pkl made joblib rerun the cached function, which
    stored and returned None, for this and every later run."""
    ext, cold = _fitted(family, mode)
    X = _input(mode)
    with tempfile.TemporaryDirectory() as folder:
        cached = ext.set_params(memory=folder)
        try:
            _assert_same(cached.transform(X), cold)  # fills the cache
            entries = _entries(folder)
            assert entries
            for index, how in damages:
                path = entries[index % len(entries)]
                if path.exists():
                    _damage(path, how)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".* of the feature cache .* could not be read",
                                        UserWarning)
                _assert_same(cached.transform(X), cold)  # recomputed, not None
            _assert_same(cached.transform(X), cold)  # and stored whole again
            assert len(_entries(folder)) == len(entries)
        finally:
            ext.set_params(memory=None)


def test_a_damaged_entry_warns_and_is_rewritten(fitted, tmp_path):
    ext, cold = fitted["conv", "dense"]
    cached = ext.set_params(memory=tmp_path)
    try:
        cached.transform(IMAGES)
        entry = _entries(tmp_path)[0]
        entry.write_bytes(entry.read_bytes()[:100])
        with pytest.warns(UserWarning, match="1 entry of the feature cache .* could not be "
                                             "read .* computed again"):
            _assert_same(cached.transform(IMAGES), cold)
        _assert_same(cached.transform(IMAGES), cold)  # no warning: the entry is whole
    finally:
        ext.set_params(memory=None)


def test_the_cache_never_stores_what_was_not_computed(tmp_path):
    from skcorr.features._cache import FeatureCache, check_memory_folder

    cache = FeatureCache(check_memory_folder(tmp_path), "signature")
    with pytest.raises(RuntimeError, match="A dense result is a NoneType, not FeatureMap; "
                                           "nothing was cached"):
        cache.get_or_compute("dense", IMAGES, lambda images: [None] * len(images),
                             expect=FeatureMap)
    assert not _entries(tmp_path)


def test_an_entry_of_the_wrong_type_is_recomputed(tmp_path):
    """A readable entry holding something else (another version's format) is not served."""
    from skcorr.features._cache import FeatureCache, check_memory_folder

    cache = FeatureCache(check_memory_folder(tmp_path), "signature")
    cache.get_or_compute("global", IMAGES, lambda images: [np.zeros(3) for _ in images])
    calls = []

    def compute(images):
        calls.append(len(images))
        return [[1.0, 2.0] for _ in images]

    with pytest.warns(UserWarning, match="2 entries of the feature cache"):
        got = cache.get_or_compute("global", IMAGES, compute, expect=list)
    assert calls == [2] and got == [[1.0, 2.0], [1.0, 2.0]]
    assert cache.get_or_compute("global", IMAGES, compute, expect=list) == got
    assert calls == [2]  # the recomputed entries were stored


# --- the weights digest follows in-place edits ---------------------------------------


def test_editing_the_network_in_place_gives_new_features(tmp_path):
    """Issue 23 item 4: the digest was memoised per module, so edited weights were served
    the features of the old ones."""
    torch.manual_seed(1)
    ext = _conv("dense", memory=tmp_path).fit()
    before = ext.transform(IMAGES)
    with torch.no_grad():
        for parameter in ext.network_.parameters():
            parameter.mul_(-1.5)
    after = ext.transform(IMAGES)
    fresh = _conv("dense").fit()
    fresh.network_.load_state_dict(ext.network_.state_dict())
    _assert_same(after, fresh.transform(IMAGES))
    assert not np.allclose(after[0].features, before[0].features)
    # load_state_dict (copy_ in place) and a replaced tensor are seen too
    ext.network_.load_state_dict(_conv("dense").fit().network_.state_dict())
    third = ext.transform(IMAGES)
    assert not np.allclose(third[0].features, after[0].features)


def test_the_digest_is_memoised_while_nothing_changes(monkeypatch):
    from skcorr.features import _cache

    module = torch.nn.Linear(3, 2)
    first = _cache.weights_digest(module)
    hashed = []
    blake2b = _cache.hashlib.blake2b
    monkeypatch.setattr(_cache.hashlib, "blake2b",
                        lambda **kw: hashed.append(1) or blake2b(**kw))
    assert _cache.weights_digest(module) == first and not hashed
    with torch.no_grad():
        module.bias.add_(1.0)
    assert _cache.weights_digest(module) != first and hashed


# --- n_jobs and image_size are bounded ----------------------------------------------


@pytest.mark.parametrize("n_jobs", [True, 0, 10**5, -(os.cpu_count() or 1) - 1, 1.5])
def test_n_jobs_has_one_rule(n_jobs):
    """Issue 23 item 6: n_jobs=10**5 asked joblib for 100,000 threads, True was taken."""
    from sklearn.utils._param_validation import InvalidParameterError

    from skcorr import KeypointClassifier, SlidingKeypointDetector
    from skcorr._validation import check_n_jobs
    from skcorr.evaluation import evaluate_cub_transfer

    with pytest.raises(ValueError, match="n_jobs must be a number of parallel workers from 1 "
                                         "to 1024"):
        check_n_jobs(n_jobs)
    for estimator in (KeypointClassifier(n_jobs=n_jobs), SlidingKeypointDetector(n_jobs=n_jobs)):
        with pytest.raises(InvalidParameterError, match="'n_jobs' parameter .* other than 0"):
            estimator.fit(*_tiny_fit_data(estimator))
    with pytest.raises(ValueError, match="n_jobs must be"):  # before any data is read
        evaluate_cub_transfer("/no/such/folder", n_jobs=n_jobs)


def _tiny_fit_data(estimator):
    if type(estimator).__name__ == "KeypointClassifier":
        X, y, _ = keypoint_samples(IMAGES, KEYPOINTS)
        return X, y
    return IMAGES, KEYPOINTS


@pytest.mark.parametrize("n_jobs", [None, 1, -1, 2, 1024])
def test_sane_n_jobs_pass(n_jobs):
    from skcorr._validation import check_n_jobs

    assert check_n_jobs(n_jobs) == n_jobs


@pytest.mark.parametrize("make", [_conv, _sift])
def test_image_size_is_bounded(make):
    """Issue 23 item 7: --image-size 60000 ended in a MemoryError."""
    from sklearn.utils._param_validation import InvalidParameterError

    from skcorr.features import MAX_IMAGE_SIZE

    assert MAX_IMAGE_SIZE == 4096
    with pytest.raises(InvalidParameterError, match=r"'image_size' parameter .* in the range "
                                                    r"\[16, 4096\]"):
        make("dense").set_params(image_size=60000).fit()
    make("dense").set_params(image_size=4096).fit()


def test_cub_protocols_check_their_sizes_before_reading_data():
    from skcorr.evaluation import (
        evaluate_cub_classification,
        evaluate_cub_detection,
        evaluate_cub_transfer,
    )

    with pytest.raises(ValueError, match="image_size must be a whole number of pixels from 16 "
                                         "to 4096 or None"):
        evaluate_cub_classification("/no/such/folder", image_size=60000)
    with pytest.raises(ValueError, match="box_size must be"):
        evaluate_cub_detection("/no/such/folder", box_size=0)
    for cv in (1, 0, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"cv must be a whole number of folds, at least 2"):
            evaluate_cub_detection("/no/such/folder", cv=cv)
    for Cs in ((), [0.1, -1.0], [0.0], [float("nan")], "0.1", [True], None):
        with pytest.raises(ValueError, match=r"Cs must be a non-empty sequence of positive "
                                             r"numbers, e.g. \(0.01, 0.1, 1.0\), got "):
            evaluate_cub_detection("/no/such/folder", Cs=Cs)
    for betas in ([0.1, 1.5], [-0.1], "0.1", None):
        with pytest.raises(ValueError, match="betas must be a sequence of prior weights from "
                                             "0 to 1"):
            evaluate_cub_detection("/no/such/folder", betas=betas)
    with pytest.raises(ValueError, match="crop_size must be"):
        evaluate_cub_transfer("/no/such/folder", crop_size=10**5)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        evaluate_cub_transfer("/no/such/folder", alpha=1.5)


def test_cli_bound_is_the_features_bound():
    from skcorr import cli
    from skcorr.features import MAX_IMAGE_SIZE

    assert cli.MAX_IMAGE_SIZE == MAX_IMAGE_SIZE


# --- dask: a hard deadline --------------------------------------------------------------


@contextlib.contextmanager
def _silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never says anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


def test_a_server_that_does_not_speak_dask_fails_within_the_timeout():
    """Issue 23 item 5: dask_backend(address, timeout=3) waited for ever."""
    pytest.importorskip("distributed")
    from skcorr._parallel import dask_backend

    result = []

    def connect(address):
        try:
            with dask_backend(address, timeout=1.0):
                result.append("connected")
        except ValueError as exc:
            result.append(exc)

    with _silent_server() as (address, accepted):
        thread = threading.Thread(target=connect, args=(address,), daemon=True)
        thread.start()
        thread.join(30)  # the old code was still waiting after 60 s
        assert not thread.is_alive(), "dask_backend did not return within 30 s"
        assert accepted  # it did connect: the deadline covers the handshake
    (error,) = result
    assert isinstance(error, ValueError)
    assert f"No dask scheduler answers at {address!r} within 1 s" in str(error)
    assert "dask scheduler" in str(error)


@pytest.mark.parametrize("address", ["", "   ", "tcp://host :1"])
def test_an_empty_scheduler_address_is_a_clear_error(address):
    from skcorr._parallel import dask_backend

    with pytest.raises(ValueError, match="address must be a dask scheduler's address such as"):
        with dask_backend(address):
            pass


def test_a_real_scheduler_still_connects():
    distributed = pytest.importorskip("distributed")
    from skcorr._parallel import dask_backend

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with dask_backend(cluster.scheduler_address, timeout=20) as client:
            assert client.submit(sum, [1, 2]).result() == 3


# --- the command line: every argument checked before data is read ----------------------

_NEGATIVE = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False)
_NOT_FINITE = st.sampled_from(["nan", "inf", "-inf", "abc", ""])


def _text(strategy):
    return strategy.map(lambda v: repr(v) if isinstance(v, float) else str(v))


_IMAGE_SIDE = st.one_of(_text(st.integers(max_value=15)), _text(st.integers(min_value=4097)),
                        _text(st.floats(1.1, 100.9)), _NOT_FINITE)
# (protocol, flag, invalid values as command-line text, other arguments it needs)
_INVALID = [
    ("pf-willow", "--lam-grid", st.one_of(_text(_NEGATIVE), _NOT_FINITE),
     ["--lam", "cv"]),
    ("cub-transfer", "--lam-grid", st.one_of(_text(_NEGATIVE),
                                              _NOT_FINITE), ["--lam", "cv"]),
    ("pf-willow", "--lam", st.one_of(_text(_NEGATIVE),
                                     st.sampled_from(["nan", "inf", "x", "CV"])), []),
    ("pf-willow", "--image-size", _IMAGE_SIDE, []),
    ("cub-classify", "--image-size", _IMAGE_SIDE, []),
    ("cub-transfer", "--crop-size", _IMAGE_SIDE, []),
    ("cub-detect", "--box-size", _IMAGE_SIDE, []),
    ("cub-detect", "--cv", st.one_of(_text(st.integers(max_value=1)), st.just("2.5"),
                                      _NOT_FINITE), []),
    ("cub-detect", "--Cs", st.one_of(_text(_NEGATIVE), st.just("0"), _NOT_FINITE), []),
    ("pf-willow", "--levels", st.one_of(_text(st.integers(max_value=-1)), _NOT_FINITE), []),
    ("cub-transfer", "--levels", _text(st.integers(max_value=-1)), []),
    ("pf-willow", "--radius", st.one_of(_text(st.integers(max_value=-1)), _NOT_FINITE), []),
    ("cub-classify", "--sift-radius",
     st.one_of(_text(_NEGATIVE), _text(st.floats(4096.001, 1e300)), st.just("0"),
               _NOT_FINITE), []),
    ("pf-willow", "--alpha", st.one_of(_text(_NEGATIVE), _text(st.floats(1.0000001, 1e300)),
                                       st.just("0"), _NOT_FINITE), []),
    ("pf-willow", "--n-jobs",
     st.one_of(st.just("0"), _text(st.integers(min_value=1025)),
               _text(st.integers(max_value=-(os.cpu_count() or 1) - 1)), _NOT_FINITE), []),
    ("cub-transfer", "--n-jobs", st.sampled_from(["0", "True", "1.5", "100000"]), []),
    ("pf-willow", "--scheduler", st.sampled_from(["", " ", "tcp://a b:1"]), []),
]


def _run_cli(argv):
    """``main(argv)``: (exit status, stderr), whether it returns or exits."""
    from skcorr.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, err.getvalue()


@settings(max_examples=60, deadline=None)
@given(data=st.data(), case=st.sampled_from(_INVALID), where=st.sampled_from(["missing",
                                                                              "empty"]))
def test_any_invalid_argument_is_refused_before_data_is_read(data, case, where):
    """Issue 23 item 9: these were checked only after loading data (or the evaluation)."""
    protocol, flag, values, needs = case
    value = data.draw(values, label="value")
    with tempfile.TemporaryDirectory() as folder:
        data_folder = os.path.join(folder, "missing") if where == "missing" else folder
        status, err = _run_cli(["evaluate", protocol, "--data", data_folder, *needs,
                                f"{flag}={value}"])
        assert os.listdir(folder) == []  # nothing written
    assert status == 2, err
    assert err.count("\n") == 1 and f"argument {flag}:" in err, err
    assert err.startswith(f"skcorr evaluate {protocol}: error: argument {flag}:"), err


def test_lam_grid_without_lam_cv_is_refused(tmp_path):
    """Issue 23 item 10: it was silently ignored."""
    for protocol in ("pf-willow", "cub-transfer"):
        status, err = _run_cli(["evaluate", protocol, "--data", str(tmp_path / "missing"),
                                "--lam-grid", "0.1", "0.2"])
        assert status == 2
        assert err == (f"skcorr evaluate {protocol}: error: argument --lam-grid: the candidates "
                       "are only used by --lam cv; add --lam cv or leave --lam-grid out\n")


def test_missing_data_and_a_full_output_folder_exit_2(tmp_path):
    """Issue 23 item 10: both exited with 1 where the guide says 2."""
    status, err = _run_cli(["evaluate", "pf-willow", "--data", str(tmp_path / "missing"),
                            "--output", str(tmp_path / "out")])
    assert status == 2 and err.count("\n") == 1
    assert "data folder" in err and "does not exist" in err
    assert not (tmp_path / "out").exists()  # checked before the output folder is made
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("mine")
    status, err = _run_cli(["demo", "--output", str(tmp_path / "full")])
    assert status == 2 and err.count("\n") == 1 and "already holds files" in err
    assert (tmp_path / "full" / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_turns_the_progress_off(quiet, tmp_path, monkeypatch):
    import skcorr.evaluation
    from skcorr.evaluation import ResultTable

    seen = []

    def record(path, *, verbose, **options):
        seen.append(verbose)
        return ResultTable([{"row": 1}], name="recorded")

    monkeypatch.setattr(skcorr.evaluation, "evaluate_cub_detection", record)
    status, _ = _run_cli(["evaluate", "cub-detect", "--data", str(tmp_path),
                          *(["--quiet"] if quiet else [])])
    assert status == 0 and seen == [not quiet]


# --- SIGTERM ends a command like Ctrl-C -------------------------------------------------


def test_sigterm_is_one_line_130_and_removes_the_empty_output(monkeypatch, tmp_path, capsys):
    """Issue 23 item 3: SIGTERM left a traceback-less death and an empty --output."""
    import skcorr.cli as cli

    def terminated(args):
        cli.prepare_output_dir(args.output, args.overwrite)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler interrupts this
        raise AssertionError("SIGTERM was not delivered")

    monkeypatch.setattr(cli, "_cmd_demo", terminated)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    assert cli.main(["demo", "--output", str(out)]) == 130
    assert capsys.readouterr().err == "skcorr demo: interrupted by SIGTERM\n"
    assert not out.exists()
    assert signal.getsignal(signal.SIGTERM) is before  # restored


_SLOW_PROTOCOL = """
import sys, time
import skcorr.evaluation
from skcorr.cli import main
from skcorr.evaluation import ResultTable

def evaluate(path, *, verbose, **options):
    table = ResultTable(title="rows one by one", name="cub-classify")
    with table.keep_on_interrupt():
        for i in range(100):
            table.append({"row": i, "accuracy": 0.5})
            if i == 1:
                print("two rows done", file=sys.stderr, flush=True)
            time.sleep(0.5)
    return table

skcorr.evaluation.evaluate_cub_classification = evaluate
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_writes_the_finished_rows_whole(tmp_path):
    """Issue 23 item 3: the rows a protocol finished reach --output when it is stopped."""
    out = tmp_path / "tables"
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_PROTOCOL, "evaluate", "cub-classify", "--data",
         str(tmp_path), "--output", str(out)], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = process.stderr.readline()
        assert line == "two rows done\n", line + process.stderr.read()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.count("\n") == 1 and "interrupted by SIGTERM" in stderr
    assert "finished rows are in" in stderr and str(out) in stderr
    rows = (out / "cub-classify.csv").read_text().splitlines()
    assert rows[0] == "row,accuracy" and rows[1:3] == ["0,0.5", "1,0.5"]
    n = len(rows) - 1
    assert f"Interrupted: only these {n} rows were finished." in (out / "cub-classify.md"
                                                                   ).read_text()
    assert "rows one by one" in stdout and "Interrupted" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["cub-classify.csv", "cub-classify.md"]


# --- tables: errors name the target, links are written through ------------------------


def test_a_table_written_to_a_symlink_keeps_the_link(tmp_path):
    """Issue 23 item 10: the link was replaced by a file."""
    from skcorr.evaluation import ResultTable

    target = tmp_path / "real" / "table.csv"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    ResultTable([{"a": 1}]).write(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert target.read_text() == "a\n1\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_write_errors_name_the_target_not_the_temporary_file(tmp_path):
    from skcorr.evaluation import ResultTable

    target = tmp_path / "no" / "such" / "folder" / "table.md"
    with pytest.raises(FileNotFoundError) as info:
        ResultTable([{"a": 1}]).write(target)
    assert info.value.filename == str(target)
    assert ".tmp" not in str(info.value) and str(target) in str(info.value)


# --- a multi-frame image is refused ---------------------------------------------------


def test_an_animated_gif_is_refused(tmp_path):
    """Issue 23 item 11: the GIF silently became its first frame."""
    from PIL import Image

    from skcorr._image import as_rgb

    frames = [Image.fromarray(image) for image in _images(3, (20, 24))]
    path = tmp_path / "moving.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ValueError, match="moving.gif' has 3 frames; skcorr reads single "
                                         "images: extract the frame you want"):
        as_rgb(path)
    frames[0].save(tmp_path / "still.gif")
    assert as_rgb(tmp_path / "still.gif").shape == (20, 24, 3)


# --- progress bars on stderr, never on stdout -----------------------------------------


def test_features_show_a_progress_bar_on_stderr(monkeypatch, capsys):
    """Issue 23 item 12: long feature extraction was silent."""
    from skcorr.features import _base

    monkeypatch.setattr(_base, "PROGRESS_DELAY", 0.0)
    ext = _conv("dense").set_params(verbose=True, batch_size=1).fit()
    ext.extract_dense(IMAGES)
    ext.extract_global(IMAGES)
    ext.set_params(mode="keypoints").transform(_input("keypoints"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("ConvColumnExtractor features") >= 3 and "/2 " in captured.err
    ext.set_params(verbose=False).extract_dense(IMAGES)
    assert capsys.readouterr().err == ""


def test_the_detector_shows_its_rounds_on_stderr(monkeypatch, capsys):
    from skcorr import SlidingKeypointDetector

    det = SlidingKeypointDetector(features=_conv("dense"), box_size=48, mining_rounds=1,
                                  cache_size=20, verbose=True, random_state=0)
    with monkeypatch.context() as m:
        import skcorr.keypoints._detector as detector

        real = detector.tqdm
        m.setattr(detector, "tqdm", lambda *a, **k: real(*a, **{**k, "delay": 0}))
        det.fit(IMAGES * 2, np.concatenate([KEYPOINTS, KEYPOINTS]))
    captured = capsys.readouterr()
    assert captured.out == "" and "training and mining" in captured.err
