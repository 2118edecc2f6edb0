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
    demo.add_argument("--n-pairs", type=int, default=4, help="number of sample pairs")
    demo.add_argument("--random-state", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    layers = sub.add_parser("layers", help="print a backbone's layers and receptive fields")
    layers.add_argument("--backbone", default="efficientnet_lite0")
    layers.set_defaults(func=_cmd_layers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"skcorr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
