"""The skcorr command: demo, layers, evaluate, and its errors."""

import pytest

from skcorr.cli import main


def test_layers_prints_the_paper_numbers_for_alexnet(capsys):
    assert main(["layers", "--backbone", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "| conv4 | features.9 | 131 | 16 | 15 | conv4 |" in out
    assert "| pool5 | features.12 | 195 | 32 | 31 | pool5 |" in out


def test_unknown_backbone_subcommand_and_option(capsys):
    assert main(["layers", "--backbone", "nope"]) == 2
    assert "Unknown backbone 'nope'" in capsys.readouterr().err
    for argv in (["frobnicate"], ["demo", "--colour", "red"], ["evaluate", "pf-sparrow"],
                 ["demo", "--n-pairs", "1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


def test_demo_writes_tables_and_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--n-pairs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "| conv4 | features.9 | 131 | 16 | 15 | conv4 |" in printed
    assert "flow MRF" in printed and "nearest column" in printed
    assert {p.name for p in out.iterdir()} == {"transfer_pck.csv", "transfer_pck.md",
                                               "aligned_pair.png", "reconstruction.png"}
    assert "uniform RF, k=5" in printed
    rows = (out / "transfer_pck.csv").read_text().splitlines()
    assert rows[0] == "features,matching,lam,PCK@0.05,PCK@0.1" and len(rows) == 5


def test_demo_never_writes_into_a_folder_holding_other_files(tmp_path, capsys):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert main(["demo", "--output", str(tmp_path)]) == 2  # bad input: 2, as the guide says
    assert "already holds files; pass --overwrite" in capsys.readouterr().err
    assert keep.read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


def test_evaluate_needs_an_existing_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SKCORR_DATA", raising=False)
    assert main(["evaluate", "pf-willow", "--method", "identity"]) == 2
    assert "--data PATH or by setting SKCORR_DATA" in capsys.readouterr().err
    assert main(["evaluate", "pf-willow", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "pf-willow", "--data", str(tmp_path)]) == 2  # no images inside


def test_evaluate_identity_on_pf_willow(pf_willow_dir, tmp_path, capsys):
    out = tmp_path / "tables"
    argv = ["evaluate", "pf-willow", "--data", str(pf_willow_dir), "--method", "identity",
            "--output", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "900 pairs" in printed
    assert "| mean | 900 | 12.2 | 27.0 | 41.7 |" in printed
    assert (out / "pf-willow-identity.csv").read_text().startswith("class,pairs,PCK@0.05")


def test_every_protocol_takes_its_options_as_keywords():
    """The command line is a table: each protocol's options are its function's keywords."""
    import inspect

    import skcorr.evaluation
    from skcorr.cli import _build_parser, _protocols

    parser = _build_parser()
    for name, _, folder, function, _ in _protocols():
        args = vars(parser.parse_args(["evaluate", name]))
        assert args["folder"] == folder
        options = {key: value for key, value in args.items()
                   if key not in {"command", "protocol", "handler", "function", "folder",
                                  "data", "output", "overwrite", "scheduler",
                                  "scheduler_wait", "quiet"}}
        assert options, name
        signature = inspect.signature(getattr(skcorr.evaluation, function))
        signature.bind("path", verbose=True, **options)  # raises on an unknown keyword


@pytest.fixture(scope="module")
def small_willow(pf_willow_dir, tmp_path_factory):
    """PF-WILLOW cut to two images in one sub-class of each category (links, no copies)."""
    root = tmp_path_factory.mktemp("willow")
    for name in ("car(S)", "duck(S)", "motorbike(S)", "winebottle(M)"):
        (root / name).mkdir()
        for png in sorted((pf_willow_dir / name).glob("*.png"))[:2]:
            for path in (png, png.with_suffix(".mat")):
                (root / name / path.name).symlink_to(path)
    return root


def test_evaluate_pf_willow_cross_validated_prints_one_table(small_willow, tmp_path, capsys):
    out = tmp_path / "tables"
    argv = ["evaluate", "pf-willow", "--data", str(small_willow), "--features", "sift",
            "--lam", "cv", "--lam-grid", "0.05", "0.5", "--image-size", "96", "--alpha", "0.1",
            "--output", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "PF-WILLOW, 8 pairs, flow on dense SIFT" in printed
    assert "settings chosen by nested leave-one-category-out CV (lam in 0.05 | 0.5)" in printed
    header = "| class | pairs | held-out | lam | PCK@0.1 (%) | cv PCK@0.1 (%) |"
    assert header in printed and "{" not in printed  # a table, no dicts
    rows = (out / "pf-willow-flow-sift-lamcv.csv").read_text().splitlines()
    assert rows[0] == "class,pairs,held-out,lam,PCK@0.1,cv PCK@0.1" and len(rows) == 6
    assert rows[1].startswith("car(S),2,car,") and rows[-1].startswith("mean,8,,,")
    assert (out / "pf-willow-flow-sift-lamcv.md").read_text().startswith("PF-WILLOW, 8 pairs")


@pytest.mark.parametrize("argv, expected", [
    (["cub-classify"], {"backbone": "efficientnet_lite0", "layers": None,
                        "sift_radii": [4.0, 8.0, 12.0, 16.0, 20.0], "image_size": 256}),
    (["cub-classify", "--backbone", "efficientnet_lite2", "--layer", "stage5",
      "stage5+stage6", "--sift-radius"],
     {"backbone": "efficientnet_lite2", "layers": ["stage5", ["stage5", "stage6"]],
      "sift_radii": []}),
    (["cub-detect"], {"backbone": "efficientnet_lite0", "conv_layer": "conv5", "sift": True,
                      "box_size": 160, "cv": 3, "Cs": [0.01, 0.1, 1.0]}),
    (["cub-detect", "--backbone", "efficientnet_lite2", "--layer", "stage5+stage6",
      "--no-sift", "--cv", "4", "--Cs", "0.03", "0.3"],
     {"backbone": "efficientnet_lite2", "conv_layer": ["stage5", "stage6"], "sift": False,
      "cv": 4, "Cs": [0.03, 0.3]}),
    (["pf-willow"], {"truncations": [None], "ot_regs": [None], "subcell": False}),
    (["pf-willow", "--truncation", "none", "3", "--ot-reg", "0.2", "--subcell"],
     {"truncations": [None, 3.0], "ot_regs": [0.2], "subcell": True}),
    (["cub-transfer"], {"truncation": None, "ot_reg": None, "subcell": False}),
    (["cub-transfer", "--truncation", "3", "--ot-reg", "None", "--subcell"],
     {"truncation": 3.0, "ot_reg": None, "subcell": True}),
])
def test_protocols_pass_their_options_to_their_function(argv, expected, tmp_path,
                                                                  monkeypatch, capsys):
    """--backbone/--layer of cub-classify/-detect and the flow's --truncation, --ot-reg,
    --subcell reach the protocol's function as keywords that bind to its signature; the
    defaults are the function's own."""
    import inspect

    import skcorr.evaluation
    from skcorr.evaluation import ResultTable

    name = {"cub-classify": "evaluate_cub_classification",
            "cub-detect": "evaluate_cub_detection", "pf-willow": "evaluate_pf_willow",
            "cub-transfer": "evaluate_cub_transfer"}[argv[0]]
    signature = inspect.signature(getattr(skcorr.evaluation, name))
    calls = []

    def record(path, **options):
        signature.bind(path, **options)
        calls.append(options)
        return ResultTable([{"rows": 1}], title="recorded", name="recorded")

    monkeypatch.setattr(skcorr.evaluation, name, record)
    assert main(["evaluate", *argv, "--data", str(tmp_path)]) == 0
    assert "recorded" in capsys.readouterr().out
    (options,) = calls
    assert {key: options[key] for key in expected} == expected
    if len(argv) == 1:  # the defaults are the function's (box_size: RESULTS.md's 160)
        for key in expected.keys() - {"box_size", "image_size"}:
            default = signature.parameters[key].default
            assert options[key] == (list(default) if isinstance(default, tuple) else default)
