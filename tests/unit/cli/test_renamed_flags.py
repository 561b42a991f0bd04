"""Former CLI flag names still work and print a note naming the new flag; the new ones are silent."""

from __future__ import annotations

import pytest

from pixsight.cli.main import build_parser

#: (argv with the former flag, the new flag, where the value lands)
CASES = [
    (["faces", "who", "a.jpg", "--threshold", "0.45"], "--distance-threshold", "distance_threshold"),
    (["faces", "find", "ann", "--threshold", "0.45"], "--distance-threshold", "distance_threshold"),
    (["explain", "runs/detect/x", "a.jpg", "--score-threshold", "0.45"], "--conf-threshold", "conf_threshold"),
]


@pytest.mark.parametrize(("argv", "new", "dest"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_former_flag_still_works_with_a_note(capsys: pytest.CaptureFixture[str], argv: list[str], new: str,
                                             dest: str) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == pytest.approx(0.45)
    err = capsys.readouterr().err
    assert f"{argv[-2]} is deprecated; use {new}" in err


@pytest.mark.parametrize(("argv", "new", "dest"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_new_flag_works_silently_and_defaults_are_kept(capsys: pytest.CaptureFixture[str], argv: list[str], new: str,
                                                       dest: str) -> None:
    parser = build_parser()
    assert getattr(parser.parse_args([*argv[:-2], new, "0.45"]), dest) == pytest.approx(0.45)
    default = getattr(parser.parse_args(argv[:-2]), dest)
    assert default == (0.6 if dest == "distance_threshold" else None)  # the old alias does not clobber it
    assert "deprecated" not in capsys.readouterr().err


def test_former_flags_are_hidden_from_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["faces", "who", "--help"])
    out = capsys.readouterr().out
    assert "--distance-threshold" in out and "--threshold " not in out
