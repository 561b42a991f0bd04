"""TrainedStage on tiny real runs: known boxes, masks and classes back in image coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixsight.core.config import AnalyzeConfig, DetectOptions
from pixsight.core.errors import ConfigError, WeightsError
from pixsight.core.image import LoadedImage
from pixsight.core.types import Classification, Detections, Segmentation
from pixsight.models.runs import run_spec
from pixsight.tasks.trained import TrainedStage, create_stage, load_trained_stage

from .runs import make_run, squares_image


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {task: make_run(root, task) for task in ("classify", "detect", "segment")}


def loaded(pixels: np.ndarray, *, width: int | None = None, height: int | None = None) -> LoadedImage:
    h, w = pixels.shape[:2]
    return LoadedImage(pixels=pixels, width=width or w, height=height or h, format="PNG", sha256="0" * 64, nbytes=1)


def box_tolerance(width: int, height: int, size: int = 64) -> float:
    """One model-input pixel in image pixels, plus rounding."""
    return max(width, height) / size + 1.0


@pytest.mark.parametrize("width, height", [(200, 120), (90, 160), (64, 64)])
def test_detect_maps_boxes_back_through_the_letterbox(runs: dict[str, Path], width: int, height: int) -> None:
    img, _ = squares_image(200, 120)
    from PIL import Image

    img = np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.NEAREST))
    sx, sy = width / 200, height / 120
    truth = {"white": np.array([20 * sx, 30 * sy, 70 * sx, 80 * sy]), "red": np.array([120 * sx, 40 * sy, 180 * sx, 100 * sy])}
    with load_trained_stage(runs["detect"]) as stage:
        [out] = stage.run([loaded(img)])
    dets = out["detect"]
    assert isinstance(dets, Detections)
    assert sorted(dets.labels) == ["red", "white"]
    assert dets.model == stage.info.models["detect"] and dets.model.startswith("tiny-detect@")
    for box, label in zip(dets.boxes, dets.labels):
        np.testing.assert_allclose(box, truth[label], atol=box_tolerance(width, height))
    assert np.all(dets.scores > 0.5)


def test_predict_returns_full_image_coordinates_from_a_reduced_decode(runs: dict[str, Path]) -> None:
    img, truth = squares_image(200, 120)
    small = img[::2, ::2]  # what a reduced decode of a 200x120 image looks like
    with load_trained_stage(runs["detect"]) as stage:
        [dets] = stage.predict([loaded(small, width=200, height=120)])
    for box, label in zip(dets.boxes, dets.labels):
        np.testing.assert_allclose(box, truth[label], atol=2 * box_tolerance(100, 60))


def test_conf_threshold_analyze_default_versus_eval_list(runs: dict[str, Path]) -> None:
    img, _ = squares_image()
    img[5:9, 150:154] = 255  # a speck of white: a low-score location, but never above 0.3
    analyze = load_trained_stage(runs["detect"])
    evaluate = load_trained_stage(runs["detect"], conf_threshold=0.0)
    assert analyze.conf_threshold == pytest.approx(0.3) and evaluate.conf_threshold == 0.0
    [a] = analyze.predict([loaded(img)])
    [e] = evaluate.predict([loaded(img)])
    assert len(e) >= len(a) == 2
    assert np.all(a.scores >= 0.3)
    # what analyze reports is exactly the top of the eval list
    np.testing.assert_allclose(e.filter(conf_threshold=0.3).boxes, a.boxes)


def test_config_threshold_overrides_the_runs_own(runs: dict[str, Path]) -> None:
    spec = run_spec(runs["detect"])
    stage = create_stage(spec, AnalyzeConfig(detect=DetectOptions(conf_threshold=0.99)), ("detect",))
    assert stage.conf_threshold == 0.99
    assert create_stage(spec, AnalyzeConfig(), ("detect",)).conf_threshold == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="answers 'detect'"):
        create_stage(spec, AnalyzeConfig(), ("segment",))


def test_segment_gives_the_colour_map_at_image_size(runs: dict[str, Path]) -> None:
    img, truth = squares_image(200, 120)
    with load_trained_stage(runs["segment"]) as stage:
        [out] = stage.run([loaded(img)])
    seg = out["segment"]
    assert isinstance(seg, Segmentation) and (seg.height, seg.width) == (120, 200)
    cmap = seg.class_map()
    expected = np.zeros((120, 200), np.uint8)
    for cid, name in enumerate(("white", "red")):
        x1, y1, x2, y2 = truth[name]
        expected[y1:y2, x1:x2] = cid + 1
    assert (cmap == expected).mean() > 0.97  # off only along edges (64 px model input)
    assert seg.coverage()["red"] == pytest.approx(60 * 60 / (200 * 120), abs=0.02)


def test_classify_gives_every_class_best_first(runs: dict[str, Path]) -> None:
    red = np.zeros((40, 50, 3), np.uint8)
    red[:, :30] = (255, 0, 0)
    white = np.full((40, 50, 3), 255, np.uint8)
    with load_trained_stage(runs["classify"]) as stage:
        outs = stage.predict([loaded(red), loaded(white)])
    assert [c.top_label for c in outs] == ["red", "white"]
    assert all(isinstance(c, Classification) and len(c) == 2 for c in outs)
    assert float(outs[0].scores.sum()) == pytest.approx(1.0, abs=1e-5)
    stage = load_trained_stage(runs["classify"], top_k=1)
    assert len(stage.predict([loaded(white)])[0]) == 1


def test_a_bad_image_fails_alone_and_batches_match_single_runs(runs: dict[str, Path]) -> None:
    img, _ = squares_image()
    bad = loaded(np.zeros((10, 10), np.uint8))  # not RGB
    stage = load_trained_stage(runs["detect"], batch_size=2)
    outs = stage.run([loaded(img), bad, loaded(img[:, ::-1].copy())])
    assert isinstance(outs[1], Exception) and not isinstance(outs[0], Exception)
    single = stage.run([loaded(img[:, ::-1].copy())])[0]
    np.testing.assert_allclose(outs[2]["detect"].boxes, single["detect"].boxes)
    stage.close()
    stage.close()
    with pytest.raises(RuntimeError, match="closed"):
        stage.run([loaded(img)])


def test_load_by_registered_name_or_path(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    from pixsight.models.runs import add_run

    add_run(runs["segment"], name="leaves")
    assert load_trained_stage("leaves").info.tasks == ("segment",)
    assert load_trained_stage(str(runs["segment"])).info.models["segment"].startswith("tiny-segment@")


def test_a_model_without_the_contract_outputs_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "detect" / "swapped"
    shutil.copytree(runs["detect"], run)
    shutil.copy(runs["segment"] / "model.onnx", run / "model.onnx")  # outputs 'logits', not boxes/scores
    with pytest.raises(WeightsError, match="no output"):
        load_trained_stage(run)


def test_a_spec_that_is_not_a_run_is_refused() -> None:
    from pixsight.models.spec import ModelSpec

    with pytest.raises(ConfigError, match="not a trained"):
        TrainedStage(ModelSpec(name="x", task="ocr", backend="onnx", version="1"), session=object())


def test_former_score_threshold_keyword_still_works_and_warns(runs: dict[str, Path]) -> None:
    with pytest.warns(DeprecationWarning, match="use 'conf_threshold'"):
        stage = load_trained_stage(runs["detect"], score_threshold=0.25)
    assert stage.conf_threshold == 0.25
    with pytest.warns(DeprecationWarning, match="DetectOptions"):
        options = DetectOptions(score_threshold=0.5)
    assert options.conf_threshold == options.score_threshold == 0.5
