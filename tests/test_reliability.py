"""Faults a hostile tester found (issue 14), and the rules that keep their siblings out.

* one keypoint rule for every estimator and helper that takes keypoints of images;
* weights of another architecture, beta changed after fit;
* the command line: any OSError is one line, Ctrl-C is one line and exit 130;
* every file skcorr writes appears whole or not at all.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from skcorr import FlowAligner, GaussianNNPrior, SlidingKeypointDetector
from skcorr._io import atomic_path, write_text
from skcorr.backbones import load_network
from skcorr.cli import main
from skcorr.datasets import crop_to_boxes, make_affine_category
from skcorr.features import keypoint_samples
from skcorr.features._sift import DenseSIFT

# --- one keypoint rule ---------------------------------------------------------------


def _images(n=2, size=96):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _aligner_fit(images, keypoints):
    FlowAligner(features=DenseSIFT(mode="dense"), retrieval=DenseSIFT(mode="global"),
                n_neighbors=1, n_top=1).fit(images, keypoints)


def _aligner_score(images, keypoints):
    aligner = FlowAligner(features=DenseSIFT(mode="dense"), retrieval=DenseSIFT(mode="global"),
                          n_neighbors=1, n_top=1)
    good = np.full((len(images), 2, 2), 40.0)
    aligner.fit(images, good).score(images, keypoints)


def _prior_fit(images, keypoints):
    GaussianNNPrior(features=DenseSIFT(mode="global"), sigma=5.0).fit(images, keypoints)


def _detector_fit(images, keypoints):
    SlidingKeypointDetector(features=DenseSIFT(mode="dense"), box_size=96, mining_rounds=0,
                            negative_radius=10.0, cache_size=50,
                            random_state=0).fit(images, keypoints)


def _samples(images, keypoints):
    keypoint_samples(images, keypoints)


TAKERS = [_aligner_fit, _aligner_score, _prior_fit, _detector_fit, _samples]


@pytest.mark.parametrize("take", TAKERS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("bad, match", [
    ([[[500.0, 10.0], [5.0, 5.0]], [[5.0, 5.0], [6.0, 6.0]]],
     r"\[0, 0\] = \(500, 10\) lies outside .*\[0\] of size 96x96"),
    ([[[5.0, 5.0], [6.0, 6.0]], [[5.0, -3.0], [6.0, 6.0]]],
     r"\[1, 0\] = \(5, -3\) lies outside"),
    ([[[5.0, 5.0], [6.0, 6.0]], [[5.0, 5.0]]],
     "ragged: image 0 has 2 keypoints but image 1 has 1; give every image all K"),
    (np.full((2, 2, 2), np.nan), "all NaN: no keypoint is present"),
    ([[[5.0, 5.0], [6.0, np.inf]], [[5.0, 5.0], [6.0, 6.0]]], "infinite"),
], ids=["x500", "negative", "ragged", "all-nan", "inf"])
def test_every_keypoint_taker_applies_the_same_rule(take, bad, match):
    """Issue 14 item 2 and "Also": FlowAligner accepted x = 500 on a 96 px image."""
    with pytest.raises(ValueError, match=match):
        take(_images(), bad)


@pytest.mark.parametrize("take", [_aligner_fit, _prior_fit, _detector_fit],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_type_absent_from_training_warns_everywhere(take):
    keypoints = np.array([[[20.0, 30.0], [np.nan, np.nan]], [[60.0, 50.0], [np.nan, np.nan]]])
    with pytest.warns(UserWarning, match=r"type\(s\) \[1\] have no present keypoint"):
        take(_images(), keypoints)


def test_keypoints_on_the_image_border_are_inside():
    """Pixel centres are integers: the image spans [-0.5, W - 0.5]."""
    keypoints = [[[-0.5, -0.5], [95.5, 95.5]], [[0.0, 0.0], [95.0, 95.0]]]
    X, y, _ = keypoint_samples(_images(), keypoints)
    assert len(X) == 4 and y.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="lies outside"):
        keypoint_samples(_images(), [[[95.51, 0.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]]])


def test_keypoints_of_image_files_are_checked_against_the_file(tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((40, 200, 3), np.uint8)).save(path)
    X, _, _ = keypoint_samples([str(path)], [[[150.0, 20.0]]])  # inside 200 x 40
    assert X[0, 1] == 150.0
    with pytest.raises(ValueError, match=r"\(150, 50\) lies outside images\[0\] of size 200x40"):
        keypoint_samples([str(path)], [[[150.0, 50.0]]])


# --- weights of another architecture ----------------------------------------------------


def test_weights_of_another_architecture_name_file_backbone_and_counts(tmp_path):
    """Issue 14 item 3: a 10,000-character RuntimeError that never named the file."""
    state = load_network("efficientnet_lite0", None).state_dict()
    n = len(state)
    wrapped = tmp_path / "dataparallel.pth"  # saved from nn.DataParallel: "module." keys
    torch.save({f"module.{k}": v for k, v in state.items()}, wrapped)
    with pytest.raises(ValueError) as info:
        load_network("efficientnet_lite0", wrapped)
    message = str(info.value)
    assert str(wrapped) in message and "'efficientnet_lite0'" in message
    assert f"{n} of its {n} keys are missing, {n} keys are unexpected" in message
    assert len(message) < 1000

    tiny = tmp_path / "tiny.pth"
    torch.save({"fc.weight": torch.zeros(2, 3), "_conv_stem.weight": torch.zeros(1)}, tiny)
    with pytest.raises(ValueError, match=rf"{n - 1} of its {n} keys are missing, 1 keys are "
                                         r"unexpected and 1 have another shape"):
        load_network("efficientnet_lite0", tiny)


# --- beta at predict time ---------------------------------------------------------------


@pytest.fixture(scope="module")
def crops():
    cats = make_affine_category(6, height=96, random_state=0)
    crops, keypoints, _ = crop_to_boxes(cats.images, cats.keypoints, cats.boxes, padding=0.2)
    return crops, keypoints


def _detector(prior):
    return SlidingKeypointDetector(
        features=DenseSIFT(mode="dense"), box_size=64, mining_rounds=0, cache_size=100,
        negative_radius=12.0,
        prior=GaussianNNPrior(features=DenseSIFT(mode="global"), sigma=8.0) if prior else None,
        random_state=0)


def test_beta_is_validated_at_predict_time(crops):
    """Issue 14 item 4: set_params(beta=5).predict ran with (1 - 5) log p + 5 log prior."""
    images, keypoints = crops
    with_prior = _detector(prior=True).fit(images[:4], keypoints[:4])
    alone = with_prior.predict(images[4:])
    with pytest.raises(InvalidParameterError, match="beta"):
        with_prior.set_params(beta=5).predict(images[4:])
    with pytest.raises(InvalidParameterError, match="beta"):
        with_prior.set_params(beta=-0.1).decision_maps(images[4:])
    # beta may change after fit: it only weighs the scores fit prepared
    prior_only = with_prior.set_params(beta=1.0).predict(images[4:])
    assert not np.allclose(prior_only, alone)

    without = _detector(prior=False).fit(images[:4], keypoints[:4])
    with pytest.raises(ValueError, match="beta=0.5 weights a prior, but this detector was "
                                         "fitted with prior=None"):
        without.set_params(beta=0.5).predict(images[4:])
    with pytest.raises(ValueError, match=r"box_size=96 \(fitted with 64\) changed after fit"):
        without.set_params(beta=0.0, box_size=96).predict(images[4:])
    without.set_params(box_size=64).predict(images[4:])  # set back: fine again


# --- the command line: OSError and Ctrl-C -----------------------------------------------


def test_output_under_a_file_is_one_line(tmp_path, capsys):
    """Issue 14 item 5: NotADirectoryError / PermissionError tracebacks."""
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    assert main(["demo", "--output", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("skcorr demo: error:")
    assert "Not a directory" in err and str(blocker) in err
    assert blocker.read_text() == "mine"


def test_output_in_a_read_only_place_is_one_line(tmp_path, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):  # the tests may run as root, who may write anywhere
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main(["demo", "--output", str(tmp_path / "ro" / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "ro/out" in err


def test_interrupt_inside_a_numba_kernel_is_one_line_and_130(monkeypatch, tmp_path, capsys):
    """Issue 14 item 6, made deterministic: what numba raises for Ctrl-C in a kernel."""
    import skcorr.cli as cli

    def interrupted(args):
        cli.prepare_output_dir(args.output, args.overwrite)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher(<function bp_iterations>) returned a result "
                              "with an exception set") from exc

    monkeypatch.setattr(cli, "_cmd_demo", interrupted)
    out = tmp_path / "out"
    assert main(["demo", "--output", str(out)]) == 130
    assert capsys.readouterr().err == "skcorr demo: interrupted\n"
    assert not out.exists()  # the empty folder it made is gone again

    def bug(args):
        raise SystemError("a real bug")

    monkeypatch.setattr(cli, "_cmd_demo", bug)
    with pytest.raises(SystemError, match="a real bug"):
        main(["demo", "--output", str(out)])


def _interrupt(argv, ready: str, tmp_path, delay=1.5):
    """Run ``skcorr argv``, send SIGINT ``delay`` s after ``ready`` appears in its output."""
    repo = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "PYTHONPATH": str(repo), "PYTHONUNBUFFERED": "1"}
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored
    # SIGINT ignored: give the child the default disposition, as a terminal would.
    process = subprocess.Popen([sys.executable, "-m", "skcorr.cli", *argv], cwd=tmp_path,
                               env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    while ready not in seen:
        chunk = process.stdout.read(1)
        if not chunk:
            break
        seen += chunk
    assert ready in seen, f"never saw {ready!r}: {seen[-2000:]}"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    # Read the rest through the same buffered reader: communicate() reads the raw pipe
    # and would drop what read(1) has already buffered.
    rest = process.stdout.read()
    process.stdout.close()
    process.wait(timeout=120)
    return process.returncode, seen + rest


@pytest.mark.slow
def test_ctrl_c_during_the_demo_flow(tmp_path):
    out = tmp_path / "demo-out"
    # The interrupt lands inside the flows of six pairs (the features take seconds).
    code, err = _interrupt(["demo", "--output", str(out), "--n-pairs", "6"],
                           "## Keypoint transfer", tmp_path, delay=0.5)
    assert code == 130, err[-3000:]
    assert err.rstrip().splitlines()[-1] == "skcorr demo: interrupted"
    assert "Traceback" not in err
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not any(name.startswith(".") for name in left), left  # no temporary file
    assert set(left) <= {"transfer_pck.csv", "transfer_pck.md", "aligned_pair.png"}


@pytest.mark.slow
@pytest.mark.realdata
def test_ctrl_c_during_evaluate_pf_willow(pf_willow_dir, tmp_path):
    out = tmp_path / "tables"
    # SIFT features take seconds; flat BP (--levels 0) keeps the numba kernels busy for
    # tens of seconds, so the interrupt lands inside the flows.
    code, err = _interrupt(["evaluate", "pf-willow", "--data", str(pf_willow_dir),
                            "--features", "sift", "--levels", "0",
                            "--output", str(out)], "aligning:", tmp_path, delay=2.0)
    assert code == 130, err[-3000:]
    assert err.rstrip().splitlines()[-1] == "skcorr evaluate: interrupted"
    assert "Traceback" not in err and "SystemError" not in err
    assert not out.exists()


# --- files whole or not at all ----------------------------------------------------------


def _figure_writer(path):
    from matplotlib.figure import Figure

    from skcorr.visualize._plot import _finish

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    _finish(fig, path)


def _csv_writer(path):
    from skcorr.evaluation import ResultTable

    ResultTable([{"a": 1.0, "b": "x"}] * 50).write(path)


def _text_writer(path):
    write_text(path, "new content\n" * 1000)


WRITERS = {"text": (_text_writer, ".md"), "csv": (_csv_writer, ".csv"),
           "figure": (_figure_writer, ".png")}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("fault", ["mid-write", "before-rename-interrupt"])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_writes_leave_the_old_file_or_none(writer, fault, existing, tmp_path,
                                                       monkeypatch):
    write, suffix = WRITERS[writer]
    target = tmp_path / f"table{suffix}"
    if existing:
        target.write_bytes(b"old content")
    import skcorr._io as skio

    if fault == "mid-write":
        real_open = open

        def failing_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            if "w" in mode and Path(file).name.startswith("."):
                writer_write = handle.write

                def write_half(data):
                    writer_write(data[:len(data) // 2])
                    raise OSError(28, "No space left on device")

                handle.write = write_half
            return handle

        monkeypatch.setattr("builtins.open", failing_open)
        # matplotlib writes through its own file objects: fail inside savefig as well
        from matplotlib.figure import Figure

        real_savefig = Figure.savefig

        def failing_savefig(self, fname, *args, **kwargs):
            real_savefig(self, fname, *args, **kwargs)
            Path(fname).write_bytes(Path(fname).read_bytes()[:100])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Figure, "savefig", failing_savefig)
        error = OSError
    else:
        def interrupt(fd):
            raise KeyboardInterrupt

        monkeypatch.setattr(skio.os, "fsync", interrupt)
        error = KeyboardInterrupt
    with pytest.raises(error):
        write(target)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ([target.name] if existing else [])
    if existing:
        assert target.read_bytes() == b"old content"
    write(target)  # and without a fault, the new content arrives whole
    assert target.stat().st_size > 100 and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_atomic_files_get_the_permissions_of_new_files(tmp_path):
    with atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert (tmp_path / "x.txt").stat().st_mode == plain.stat().st_mode


def test_aligner_and_prior_settings_changed_after_fit_are_validated_again():
    """The siblings of beta: settings predict reads are checked at predict time too."""
    images = _images(3)
    keypoints = np.array([[[20.0, 30.0]], [[40.0, 50.0]], [[60.0, 20.0]]])
    aligner = FlowAligner(features=DenseSIFT(mode="dense"), retrieval=DenseSIFT(mode="global"),
                          n_neighbors=2, n_top=1).fit(images, keypoints)
    with pytest.raises(InvalidParameterError, match="lam"):
        aligner.set_params(lam=-1.0).predict(images[:1])
    with pytest.raises(ValueError, match="n_neighbors=5 but only 3 training images"):
        aligner.set_params(lam=0.1, n_neighbors=5).predict(images[:1])
    with pytest.raises(ValueError, match="n_top=3 is larger than n_neighbors=2"):
        aligner.set_params(n_neighbors=2, n_top=3).predict(images[:1])
    assert aligner.set_params(n_top=2).predict(images[:1]).shape == (1, 1, 2)

    prior = GaussianNNPrior(features=DenseSIFT(mode="global"), sigma=5.0).fit(images, keypoints)
    with pytest.raises(InvalidParameterError, match="sigma"):
        prior.set_params(sigma=0).log_density(images[:1], [10.0], [10.0])
