"""Golden-reference inspection: alignment of rendered boards, differences, and the rules that use them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camera.simulated import LineMotion, LineScene, board_crops, replay_sequence
from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.ml.datasets.boards import board_pool
from inspection.pipeline.parts import InspectRequest
from inspection.pipeline.reference_stage import ReferenceStage
from inspection.pipeline.rules import RulesConfig, apply_rules
from inspection.reference.align import align, seed_homography
from inspection.reference.differences import DifferenceConfig, find_differences, unexplained
from inspection.reference.planes import DIFF, split_planes
from inspection.reference.recipes import AlignSettings, RecipeNotFound, RegionMask, StaticGoldenBook, golden_from_image
from tests.conftest import real_board_subset

NAMES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Crops of real boards as the simulated line shows them (rotated, scaled, keystoned, re-lit)."""
    src = real_board_subset(tmp_path_factory.mktemp("boards"), 6)
    pool = board_pool(src)
    motion = LineMotion(angle_jitter_deg=2.0, scale_jitter=0.03, perspective=0.008, light_jitter=0.1, seed=4)
    scene = LineScene(pool, motion=motion, sequence=replay_sequence(pool, 0.5, seed=0))
    goldens = {s.product: golden_from_image(s.product, f"{i:064x}", s.image) for i, s in enumerate(pool.good)}
    return [(c.crop, c.board_xyxy, c.truth) for c in board_crops(scene)], goldens


def test_every_rendered_board_aligns_to_its_golden(rendered):
    crops, goldens = rendered
    assert len(crops) >= 8
    for crop, box, truth in crops:
        a = align(crop, box, goldens[truth.product])
        assert a.ok, a.failure()
        assert a.score > 0.9 and a.aligned is not None and a.aligned.shape == (640, 640)
        if not truth.defective:  # a good board, registered, differs from its golden only along edges
            diff = cv2.absdiff(a.aligned, goldens[truth.product].image)
            assert (diff > 80).mean() < 0.02


def test_a_board_of_another_product_does_not_align(rendered):
    crops, goldens = rendered
    crop, box, truth = crops[0]
    other = next(g for name, g in goldens.items() if name != truth.product)
    a = align(crop, box, other)
    assert not a.ok and a.aligned is None
    assert a.failure().startswith("alignment failed (score")
    blank = np.full_like(crop, 40)
    assert not align(blank, box, goldens[truth.product]).ok


def test_features_method_also_registers_an_upright_board(rendered):
    crops, goldens = rendered
    crop, box, truth = crops[0]
    a = align(crop, box, goldens[truth.product], AlignSettings(method="features"))
    ecc = align(crop, box, goldens[truth.product])
    assert a.ok and ecc.ok
    assert np.abs(a.homography - ecc.homography)[:2, 2].max() < 3.0  # the same placement within pixels


def test_seed_maps_the_board_box_onto_the_golden():
    h = seed_homography((10, 20, 330, 340), (640, 640))
    corners = cv2.perspectiveTransform(np.array([[[10, 20]], [[330, 340]]], np.float64), h)
    assert np.allclose(corners.reshape(-1), [0, 0, 640, 640])


def _boards(size: int = 200) -> tuple[np.ndarray, np.ndarray]:
    golden = np.zeros((size, size), np.uint8)
    cv2.rectangle(golden, (20, 20), (180, 60), 255, -1)
    board = golden.copy()
    cv2.circle(board, (100, 140), 12, 255, -1)  # a blob of copper the golden lacks
    board[100, 10:190] = 255  # a one-pixel line: misregistration noise, removed by the opening
    return board, golden


def test_differences_keep_real_regions_and_drop_thin_noise():
    board, golden = _boards()
    cfg = DifferenceConfig(threshold=80, open_px=3, min_area_px2=100)
    d = find_differences(board, golden, cfg)
    assert len(d) == 1
    x1, y1, x2, y2 = d.xyxy[0]
    assert x1 <= 90 and x2 >= 110 and y1 <= 130 and y2 >= 150
    assert len(find_differences(board, golden, cfg.model_copy(update={"min_area_px2": 1000}))) == 0
    ignore = np.zeros_like(golden)
    ignore[120:160, 80:120] = 255
    assert len(find_differences(board, golden, cfg, ignore)) == 0  # a masked region never counts
    assert unexplained(d, np.array([[95, 135, 105, 145]], np.float32)).size == 0
    assert unexplained(d, np.array([[0, 0, 10, 10]], np.float32)).tolist() == [0]


def _request(crop: np.ndarray) -> InspectRequest:
    h, w = crop.shape[:2]
    return InspectRequest(
        "p-1", "cam1", 1, crop, np.array([0, 0, w, h], np.float32), np.array([0, 0, w, h]), 7, 0.0, 0.0
    )


def _stage(golden: np.ndarray, **diff: float) -> ReferenceStage:
    g = golden_from_image("prod", "ab" * 32, golden)
    return ReferenceStage(StaticGoldenBook({"prod": g}), "prod", DifferenceConfig(**diff))


def _textured() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    from tests.conftest import draw_board

    golden = draw_board(rng, 320)
    board = golden.copy()
    cv2.circle(board, (160, 250), 14, 255 - int(golden[250, 160]), -1)
    return board, golden


def test_unexplained_difference_makes_a_passing_board_uncertain():
    board, golden = _textured()
    stage = _stage(golden, min_area_px2=120)
    prepared = stage.prepare(cv2.cvtColor(board, cv2.COLOR_GRAY2BGR), np.array([0, 0, 320, 320], np.float32))
    assert prepared.ok and prepared.info is not None and prepared.info.recipe == "prod"
    assert prepared.info.golden_sha256 == "ab" * 32 and prepared.info.alignment_score > 0.9
    assert split_planes(prepared.image)[DIFF].max() > 200
    rules = RulesConfig()
    nothing = Detections.empty(NAMES)
    v = apply_rules(_request(board), nothing, rules, prepared)
    assert v.outcome is Outcome.UNCERTAIN
    assert any("unexplained difference at (" in r for r in v.reasons)
    assert v.reference == prepared.info and v.crop.shape == (320, 320)
    box = Detections(
        np.array([[140, 230, 180, 270]], np.float32), np.array([0.9], np.float32), np.array([4], np.int64), NAMES
    )
    explained = apply_rules(_request(board), box, rules, prepared)
    assert explained.outcome is Outcome.FAIL
    assert not any("unexplained" in r for r in explained.reasons)
    off = _stage(golden, enabled=False).prepare(board, np.array([0, 0, 320, 320], np.float32))
    assert apply_rules(_request(board), nothing, rules, off).outcome is Outcome.PASS


def test_identical_board_passes_and_failed_alignment_is_never_a_pass():
    board, golden = _textured()
    stage = _stage(golden)
    same = stage.prepare(golden, np.array([0, 0, 320, 320], np.float32))
    assert apply_rules(_request(golden), Detections.empty(NAMES), RulesConfig(), same).outcome is Outcome.PASS
    noise = np.random.default_rng(0).integers(0, 255, (320, 320), dtype=np.uint8)
    bad = stage.prepare(noise, np.array([0, 0, 320, 320], np.float32))
    assert not bad.ok and bad.image is None and "alignment failed" in bad.problem
    v = apply_rules(_request(noise), Detections.empty(NAMES), RulesConfig(), bad)
    assert v.outcome is Outcome.UNCERTAIN and v.reasons[0].startswith("uncertain: alignment failed (score")
    assert v.reference is not None and not v.reference.aligned


def test_no_recipe_or_unknown_recipe_is_uncertain_not_pass():
    board, golden = _textured()
    stage = ReferenceStage(StaticGoldenBook({}), None)
    p = stage.prepare(board, np.array([0, 0, 320, 320], np.float32))
    assert not p.ok and "line.recipe is not set" in p.problem
    p = stage.prepare(board, np.array([0, 0, 320, 320], np.float32), product="nope")
    assert not p.ok and "nope" in p.problem
    assert apply_rules(_request(board), Detections.empty(NAMES), RulesConfig(), p).outcome is Outcome.UNCERTAIN
    with pytest.raises(RecipeNotFound):
        stage.set_recipe("nope")
    assert stage.recipe is None  # a refused switch changes nothing


def test_region_masks_become_the_ignore_mask():
    g = golden_from_image("p", "cd" * 32, np.zeros((100, 200), np.uint8), (RegionMask(x1=10, y1=20, x2=30, y2=40),))
    assert g.ignore is not None and g.ignore.shape == (100, 200)
    assert g.ignore[20:40, 10:30].all() and g.ignore.sum() == 20 * 20 * 255
    from inspection.reference.recipes import RecipeError

    with pytest.raises(RecipeError, match="outside"):
        golden_from_image("p", "cd" * 32, np.zeros((100, 200), np.uint8), (RegionMask(x1=10, y1=20, x2=300, y2=40),))


def test_tolerance_absorbs_misregistration_but_not_missing_copper():
    rng = np.random.default_rng(2)
    from tests.conftest import draw_board

    golden = draw_board(rng, 320)
    shifted = np.roll(golden, 3, axis=1)  # the whole board 3 px off: edges differ everywhere
    strict = DifferenceConfig(tolerance_px=0, min_area_px2=30)
    assert len(find_differences(shifted, golden, strict)) > 0
    assert len(find_differences(shifted, golden, DifferenceConfig(min_area_px2=30))) == 0
    holed = shifted.copy()
    ys, xs = np.nonzero(cv2.erode(golden, np.ones((25, 25), np.uint8)))  # deep inside a copper area
    cv2.circle(holed, (int(xs[0]) + 3, int(ys[0])), 9, 0, -1)  # copper missing there
    d = find_differences(holed, golden, DifferenceConfig(min_area_px2=30))
    assert len(d) == 1 and d.xyxy[0][0] <= xs[0] + 3 <= d.xyxy[0][2]


def test_boxes_drawn_on_a_registered_grey_board_keep_their_colours():
    from api.annotate import PALETTE, draw

    det = Detections(
        np.array([[10, 10, 60, 60]], np.float32), np.array([0.9], np.float32), np.array([0], np.int64), NAMES
    )
    out = draw(np.zeros((100, 100), np.uint8), det)
    assert out.shape == (100, 100, 3) and tuple(int(v) for v in out[35, 10]) == PALETTE[0]


def test_a_board_without_texture_aligns_by_its_outline(tmp_path):
    """DeepPCB 77000053 is one copper plane with a hole: nothing inside to correlate, only its edges."""
    pool = board_pool(real_board_subset(tmp_path / "flat", 1, offset=742))
    assert pool.good[0].board_id == "77000053"
    golden = golden_from_image(pool.good[0].product, "0f" * 32, pool.good[0].image)
    for seed in range(3):
        motion = LineMotion(angle_jitter_deg=2.0, scale_jitter=0.03, perspective=0.008, light_jitter=0.1, seed=seed)
        for c in board_crops(LineScene(pool, motion=motion, sequence=replay_sequence(pool, 0.5, seed=seed))):
            a = align(c.crop, c.board_xyxy, golden)
            assert a.ok and a.score > 0.9, a.failure()
