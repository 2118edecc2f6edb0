"""The ``skcorr`` command.

``skcorr demo``       runs on embedded data with nothing downloaded.
``skcorr layers``     prints a backbone's layers with their receptive fields.
``skcorr evaluate``   runs an evaluation protocol on a real data set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _markdown(rows: list[dict]) -> str:
    """A list of dicts as a Markdown table (numbers to 3 decimals)."""
    if not rows:
        return "(empty)"
    columns = list(rows[0])

    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _write_csv(rows: list[dict], path: Path) -> None:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


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
    path.mkdir(parents=True, exist_ok=True)
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


# Smoothness weights chosen by a sweep on PF-WILLOW (bench/README.md), per feature type:
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
                        help="flow features: convnet columns or dense SIFT (radius 20, step 16)")
    parser.add_argument("--backbone", nargs="+", default=["efficientnet_lite0"],
                        help="backbone(s) for --features conv; several are candidates for "
                             "--lam cv (efficientnet_lite1/2 need pip install 'skcorr[lite]')")
    parser.add_argument("--layer", nargs="+", type=_parse_layer, default=["conv5"],
                        help="convnet layer for --features conv (default: the conv5 role); "
                             "a+b+c makes hypercolumns of several layers; several values "
                             "are candidates for --lam cv")
    parser.add_argument("--lam", type=_parse_lam, default=None,
                        help="smoothness weight; 0 is plain nearest-column matching; 'cv' "
                             "chooses it (and the layer/backbone among those listed) by "
                             "cross-validation (default: the weight tuned on PF-WILLOW, "
                             f"{TUNED_LAM['conv']} for conv, {TUNED_LAM['sift']} for sift)")
    parser.add_argument("--lam-grid", type=float, nargs="+", default=None,
                        help="candidate weights of --lam cv (default: "
                             f"{' '.join(map(str, CV_LAMS['conv']))} for conv, "
                             f"{' '.join(map(str, CV_LAMS['sift']))} for sift)")
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
        table = transfer_pck_table(dataset, predict, alphas=args.alpha, verbose=True,
                                   reference=args.pck_reference)
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
        (out / f"{stem}.csv").write_text(table.to_csv())
        (out / f"{stem}.md").write_text(table.to_markdown() + "\n")
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
        (out / f"{stem}.md").write_text(_markdown(rows) + "\n")
        print(f"\nWrote {out / stem}.csv and .md")


def _cmd_evaluate_cub_transfer(args) -> int:
    from .evaluation import evaluate_cub_transfer

    _check_candidates(args)
    out = prepare_output_dir(args.output, args.overwrite) if args.output else None
    features, lam = _flow_features(args, None)
    if args.lam == "cv":
        lam = "cv"
    table = evaluate_cub_transfer(_data_folder(args, "CUB_200_2011"), features, lam=lam,
                                  lam_grid=_cv_grid(args)["lam"], crop_size=args.crop_size,
                                  levels=args.levels, n_jobs=args.n_jobs, verbose=True)
    chosen = table.chosen_lam if lam == "cv" else lam
    how = " (chosen by 3-fold CV on the training split)" if lam == "cv" else ""
    print(f"CUB-200-2011 keypoint transfer, {args.features} flow{_conv_description(args)}, "
          f"lam={chosen:g}{how}: test crops from 25 training neighbours, top 5 by "
          "deformation\n")
    print(table.to_markdown())
    if out is not None:
        stem = f"cub-transfer-{args.features}"
        (out / f"{stem}.csv").write_text(table.to_csv())
        (out / f"{stem}.md").write_text(table.to_markdown() + "\n")
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


def _output_options(parser) -> None:
    parser.add_argument("--output", help="folder for the tables (CSV and Markdown)")
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
    parser = argparse.ArgumentParser(
        prog="skcorr",
        description="Dense correspondence and keypoint transfer from convnet features.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the demo on embedded sample pairs (no download)")
    demo.add_argument("--output", default="skcorr-output", help="folder for tables and figures")
    demo.add_argument("--overwrite", action="store_true",
                      help="allow writing into an output folder that already holds files")
    demo.add_argument("--n-pairs", type=_at_least(2), default=4,
                      help="number of sample pairs (at least 2)")
    demo.add_argument("--random-state", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    evaluate = sub.add_parser("evaluate", help="run an evaluation protocol on real data")
    protocols = evaluate.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    willow = protocols.add_parser(
        "pf-willow", help="keypoint transfer over PF-WILLOW's 900 pairs, PCK per sub-class")
    willow.add_argument("--data", help="the PF-WILLOW folder (default $SKCORR_DATA/PF-WILLOW)")
    willow.add_argument("--method", choices=["identity", "flow"], default="flow")
    _flow_options(willow)
    willow.add_argument("--radius", type=int, default=None,
                        help="label window radius in grid steps (default: all positions)")
    willow.add_argument("--image-size", type=int, default=320,
                        help="longer image side the features are computed at")
    willow.add_argument("--alpha", type=float, nargs="+", default=[0.05, 0.1, 0.15])
    willow.add_argument("--pck-reference", choices=["bbox", "image"], default="bbox",
                        help="PCK threshold relative to the target's keypoint box "
                             "(PF-WILLOW's protocol, default) or to the whole image")
    _output_options(willow)
    willow.set_defaults(func=_cmd_evaluate_pf_willow)

    transfer = protocols.add_parser(
        "cub-transfer", help="CUB keypoint transfer from retrieved training neighbours")
    transfer.add_argument("--data", help="the CUB_200_2011 folder "
                                         "(default $SKCORR_DATA/CUB_200_2011)")
    _flow_options(transfer)
    transfer.add_argument("--crop-size", type=int, default=160)
    transfer.add_argument("--n-jobs", type=int, default=2)
    _output_options(transfer)
    transfer.set_defaults(func=_cmd_evaluate_cub_transfer)

    classify = protocols.add_parser(
        "cub-classify", help="CUB keypoint classification: SIFT radii against convnet layers")
    classify.add_argument("--data", help="the CUB_200_2011 folder")
    classify.add_argument("--image-size", type=int, default=256)
    _output_options(classify)
    classify.set_defaults(func=_cmd_evaluate_cub_classify)

    detect = protocols.add_parser(
        "cub-detect", help="CUB part detection with and without the nearest-neighbour prior")
    detect.add_argument("--data", help="the CUB_200_2011 folder")
    detect.add_argument("--box-size", type=int, default=224)
    _output_options(detect)
    detect.set_defaults(func=_cmd_evaluate_cub_detect)

    layers = sub.add_parser("layers", help="print a backbone's layers and receptive fields")
    layers.add_argument("--backbone", default="efficientnet_lite0")
    layers.set_defaults(func=_cmd_layers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``skcorr`` command with ``argv`` (default: the process arguments).

    Returns the exit status: 0 on success, 2 for bad input (with the reason on stderr).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"skcorr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
