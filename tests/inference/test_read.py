"""Reading numbers and the honest single-digit answers: segmentation on constructed cases, `read` and the
verdicts end to end (CLI and API) on real MNIST digits, the field cases, and the refusal of non-digits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.cli import main
from digitlab.data.preprocess import image_ink, to_mnist_28x28
from digitlab.data.segment import segment_line
from digitlab.data.synthetic import NON_DIGIT_FAMILIES, STYLES, non_digit, number_image, render

FIELD = Path(__file__).resolve().parents[1] / "field_cases"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "field-cases"


def _field(name: str) -> Path:
    """A field case: the copy under tests/, else ../shared/field-cases/."""
    return FIELD / name if (FIELD / name).exists() else SHARED / name


def _groups(image: Image.Image) -> int:
    return len(segment_line(image_ink(image, work_size=448).flat))


def _strokes(size, lines, width=14) -> Image.Image:
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    for line in lines:
        draw.line(line, fill=255, width=width, joint="curve")
    return image


# --- segmentation (no model) ----------------------------------------------------------------------------------


def test_digits_apart_are_separate_groups_left_to_right(mnist):
    image, _ = number_image([mnist.x_test[i] for i in (0, 1, 2)], np.random.default_rng(0), "apart")
    groups = segment_line(image_ink(image, work_size=448).flat)
    assert len(groups) == 3
    assert [g.box[2] for g in groups] == sorted(g.box[2] for g in groups)


def test_touching_digits_are_one_group_with_cut_candidates(mnist):
    image, _ = number_image([mnist.x_test[1], mnist.x_test[2]], np.random.default_rng(0), "touching")
    (group,) = segment_line(image_ink(image, work_size=448).flat)
    assert group.cuts, "a blob of two digits needs places to cut it"


def test_wide_stretches_without_a_cut_place_are_filled_only_when_reading_numbers():
    """Overlapping digits meet where the outline has no valley: a stretch wider than FILL_GAP × the height without
    a candidate gets evenly spaced ones when `fill` (reading numbers), and keeps its gap when not (the single-digit
    verdict: a wide 2 is not "22")."""
    from digitlab.data.segment import FILL_GAP, cut_candidates

    yy, xx = np.mgrid[0:60, 0:200]
    mask = ((xx - 100) / 80) ** 2 + ((yy - 30) / 20) ** 2 < 1  # a flat ellipse, 40 high, 160 wide
    box = (11, 50, 21, 180)
    valleys, filled = cut_candidates(mask, box, 40, fill=False), cut_candidates(mask, box, 40)
    assert set(valleys) < set(filled)
    assert np.diff([21, *valleys, 180]).max() > FILL_GAP * 40 >= np.diff([21, *filled, 180]).max()


def test_a_digit_drawn_in_two_strokes_is_one_group():
    four = _strokes((200, 200), [[(60, 20), (40, 110), (150, 110)], [(120, 40), (120, 190)]])  # 4: two strokes
    five = _strokes(
        (200, 200), [[(70, 30), (60, 100), (120, 90), (140, 140), (110, 180), (60, 170)], [(80, 28), (150, 28)]]
    )  # 5 with its top bar apart
    seven = _strokes((200, 200), [[(40, 30), (160, 30), (80, 190)], [(70, 110), (150, 110)]])  # 7 with a crossbar
    assert [_groups(four), _groups(five), _groups(seven)] == [1, 1, 1]


def test_a_speck_is_dropped_and_a_one_next_to_a_zero_is_two_groups():
    one_zero = _strokes((320, 200), [[(80, 30), (80, 180)]])
    ImageDraw.Draw(one_zero).ellipse((140, 30, 260, 180), outline=255, width=14)
    assert _groups(one_zero) == 2
    specked = one_zero.copy()
    ImageDraw.Draw(specked).ellipse((300, 5, 304, 9), fill=255)  # a speck in the corner
    assert _groups(specked) == 2


def test_a_digit_beside_ones_is_cut_only_when_wider_than_a_digit_beside_digits():
    """Beside 1s every digit was wider than `SPLIT_WIDER` × the others' median width, so a round 0 between two 1s
    was cut into pieces; a 1 now counts as `NARROW_AS` × its height wide. Two touching 0s there are still cut."""
    from digitlab.inference.read import NARROW_AS, _line_ink, _others_width, _pieces

    def middle_pieces(width: int) -> int:
        image = _strokes((180 + width + 40, 200), [[(40, 30), (40, 180)], [(150 + width, 30), (150 + width, 180)]])
        ImageDraw.Draw(image).ellipse((80, 30, 80 + width, 180), outline=255, width=14)
        ink = _line_ink(image, 10**8)
        groups = segment_line(ink.flat)
        assert len(groups) == 3
        line_height = int(np.median([g.height for g in groups]))
        assert _others_width(groups, 1) == pytest.approx(NARROW_AS * groups[0].height, abs=1)
        return len(_pieces(ink, groups[1], line_height, _others_width(groups, 1)))

    assert middle_pieces(135) == 1  # a round 0, 0.9 × its height: one digit
    assert middle_pieces(270) > 1  # 1.8 × its height: cut candidates are weighed


def test_marks_that_each_hold_several_digits_are_cut(monkeypatch):
    """A six-digit number in two blobs of three touching 0s: each blob was as wide as the other, so neither was wider
    than `SPLIT_WIDER` × "a digit's width" and the line was read as two digits. A mark counts at most `WIDE_AS` × its
    height wide in that median now, and both blobs are cut."""
    import digitlab.inference.read as read

    image = Image.new("L", (720, 210))
    for left in (40, 120, 200, 400, 480, 560):  # 100 px wide 0s, overlapping their neighbours by 20 px
        ImageDraw.Draw(image).ellipse((left, 30, left + 100, 180), outline=255, width=14)
    ink = read._line_ink(image, 10**8)
    groups = segment_line(ink.flat)
    assert len(groups) == 2 and all(g.width > 1.6 * g.height for g in groups)
    line_height = int(np.median([g.height for g in groups]))

    def pieces(i: int) -> int:
        return len(read._pieces(ink, groups[i], line_height, read._others_width(groups, i)))

    assert read._others_width(groups, 0) == pytest.approx(read.WIDE_AS * groups[1].height, abs=1)
    assert pieces(0) > 1 and pieces(1) > 1
    monkeypatch.setattr(read, "WIDE_AS", float("inf"))  # the rule before: each blob is "a digit" of the other's width
    assert pieces(0) == pieces(1) == 1


# --- read, end to end -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(trained_run):
    from digitlab.inference.predictor import Predictor

    return Predictor.load(trained_run, "onnx", log=lambda *_: None)


@pytest.mark.slow
def test_read_numbers_of_test_digits(predictor, mnist):
    """Separated and touching numbers of every length 2–6 are read, with boxes on the right digits."""
    from digitlab.inference.read import read_number

    rng = np.random.default_rng(1)
    right = {(gap, n): 0 for gap in ("apart", "touching") for n in range(2, 7)}
    for gap, length in right:
        for _ in range(4):
            idx = rng.choice(len(mnist.x_test), length)
            image, boxes = number_image([mnist.x_test[i] for i in idx], rng, gap)
            reading = read_number(image, predictor)
            right[gap, length] += reading.text == "".join(str(mnist.y_test[i]) for i in idx)
            if reading.text == "".join(str(mnist.y_test[i]) for i in idx):  # boxes land on the right digits
                centres = [(b[0] + b[2]) / 2 for b in boxes]
                assert all(d.box[0] <= c <= d.box[2] for d, c in zip(reading.digits, centres, strict=True))
    apart = sum(v for (gap, _), v in right.items() if gap == "apart")
    touching = sum(v for (gap, _), v in right.items() if gap == "touching")
    # this suite's quickly trained cnn reads 16 of 20 and 10 of 20; the benches on make run's model: separated
    # 88–97% by length, touching 87% of pairs down to 38% of six
    assert apart >= 14 and touching >= 8 and min(right.values()) >= 1, right


def test_field_cases_read_and_predict(trained_run, tmp_path, capsys):
    images = [_field(n) for n in ("forty_two_touching.png", "ten_1_and_0_apart.png")]
    assert (
        main(
            [
                "read",
                *map(str, images),
                "--model",
                str(trained_run),
                "--json",
                "--save-processed",
                str(tmp_path / "digits"),
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["42", "10"]
    assert all(len(d["box"]) == 4 and 0 <= d["confidence"] <= 1 for r in lines for d in r["digits"])
    assert len(list((tmp_path / "digits").glob("*.png"))) == 4
    cases = [*images, _field("dash_only.png"), _field("five_scan_16bit_fullrange.png")]
    assert main(["predict", *map(str, cases), "--model", str(trained_run), "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["verdict"] for a in answers] == ["several_digits", "several_digits", "not_a_digit", "digit"]
    assert [a["label"] for a in answers] == [None, None, None, 5]
    assert "'42'" in answers[0]["reason"] and "use read" in answers[0]["reason"]


def test_api_read_and_verdicts(trained_run):
    from fastapi.testclient import TestClient

    from digitlab.serving.app import ServeConfig, create_app

    with TestClient(create_app(ServeConfig(model=str(trained_run)))) as client:
        body = client.post("/api/read", content=_field("forty_two_touching.png").read_bytes()).json()
        assert body["text"] == "42" and body["digits"][0]["processed"].startswith("data:image/png;base64,")
        dash = client.post("/api/predict", content=_field("dash_only.png").read_bytes()).json()
        assert dash["verdict"] == "not_a_digit" and dash["label"] is None and dash["reason"].startswith("not a digit")
        blank = client.post("/api/read", json={"pixels": [[0] * 28] * 28}).json()
        assert blank["blank"] is True and blank["text"] == ""
        bad = client.post("/api/read", content=b"not an image")
        assert bad.status_code == 400 and "image" in bad.json()["error"]


# --- refusal --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_non_digits_refused_and_real_digits_accepted(predictor, mnist):
    rng = np.random.default_rng(2)

    def refused(images) -> float:
        verdicts = []
        for image in images:
            verdicts.append(predictor.answer(to_mnist_28x28(image)).verdict)
        return float(np.mean([v != "digit" for v in verdicts]))

    families = {f: refused(non_digit(f, rng) for _ in range(12)) for f in NON_DIGIT_FAMILIES}
    # every family is refused some of the time, and far more often than real digits are; the bench measures the
    # rates (61.7% over the families at 2% of real digits, short of the 90% target; crosses lowest)
    assert np.mean(list(families.values())) >= 0.35 and min(families.values()) > 0, families
    digits = refused(render(mnist.x_test[i], STYLES[i % len(STYLES)], rng) for i in range(70))
    assert digits <= 3 / 70, digits


@pytest.mark.slow
def test_mnist_own_28x28s_are_answered_as_digits(predictor, mnist):
    """Someone uploading MNIST's own test PNGs gets digits: a 28×28 is worked on enlarged to the working size, where
    its strokes are measured as a canvas's are (worked on at 28 px, 3.3% were not answered "digit" here)."""
    digits = mnist.x_test[np.random.default_rng(3).choice(len(mnist.x_test), 300, replace=False)]
    answers = [predictor.answer(to_mnist_28x28(d)) for d in digits]
    said = [a.verdict for a in answers]
    assert np.mean([v == "digit" for v in said]) >= 0.985, {v: said.count(v) for v in set(said)}


def test_refusal_is_fitted_once_and_saved(trained_run, tmp_path):
    from digitlab.inference.predictor import Predictor
    from digitlab.inference.refusal import REFUSAL_FILE, features

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns(REFUSAL_FILE, "export", "explain", "report"))
    notes: list[str] = []
    first = Predictor.load(run, "keras", log=notes.append).refusal()
    assert (run / REFUSAL_FILE).is_file() and any("first use" in n for n in notes)
    saved = json.loads((run / REFUSAL_FILE).read_text())
    assert saved["fitted_on"]["families"] != list(NON_DIGIT_FAMILIES)  # fitted on other families than benched
    notes.clear()
    again = Predictor.load(run, "keras", log=notes.append).refusal()
    assert again.threshold == first.threshold and not notes
    # the cnn's features (its last layer is a 10-unit Dense) join the six: a bank of training digits' features,
    # a 0.5% threshold, and the six-feature refusal inside for callers without them
    assert (
        again.uses_features and saved["features"][-1] == "feature_knn" and saved["fitted_on"]["digits_refused"] == 0.005
    )
    assert again.bank is not None and again.bank.bank.shape[0] == 2000 and (run / "refusal_bank.npz").is_file()
    # the Mahalanobis distances from 10,000 training digits, of the penultimate features and of the last
    # convolution's 64 channels after them: the score is the largest of each (mapped) and the regression
    width, penultimate = saved["fitted_on"]["feature_width"], saved["fitted_on"]["penultimate_width"]
    assert saved["fitted_on"]["mahalanobis_digits"] == 10_000 and again.bank.centres.shape == (10, penultimate)
    assert again.bank.conv_centres.shape == (10, 64) and width == penultimate + 64
    x = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    logits, net = Predictor.load(run, "keras", log=notes.append).forward(x)
    assert net.shape == (5, width)
    regression = again.regression(np.column_stack([features(x, logits), again.bank.distance(net)]))
    (scale, offset), (conv_scale, conv_offset) = again.mahalanobis_map, again.conv_map
    expected = np.maximum(regression, scale * again.bank.mahalanobis(net) + offset)
    expected = np.maximum(expected, conv_scale * again.bank.conv_mahalanobis(net) + conv_offset)
    np.testing.assert_allclose(again.score(x, logits, net), expected)
    plain = again.for_features(False)
    assert not plain.uses_features and plain.fitted_on["digits_refused"] == 0.01 and len(plain.coef) == 6
    # both thresholds are placed on 2,000 drawn validation digits that no fit saw (split conformal): exactly 0.5%
    # and 1% of those are refused, whatever the fitting digits say
    from digitlab.data.mnist import splits_for
    from digitlab.inference.refusal import fitting_digits

    _, drawn, held_out = fitting_digits(splits_for(Predictor.load(run, "keras").loaded.settings).x_val)
    assert saved["fitted_on"]["threshold_digits"] == len(held_out) >= 1990 and len(drawn) >= 690
    logits, net = Predictor.load(run, "keras").forward(held_out)
    assert np.mean(again.margins(held_out, logits, net) > 0) == pytest.approx(0.005, abs=1 / len(held_out))
    assert np.mean(plain.margins(held_out, logits, None) > 0) == pytest.approx(0.01, abs=1 / len(held_out))


def test_a_small_validation_split_places_the_threshold_on_its_fitting_digits(mnist):
    """Under `MIN_THRESHOLD_DIGITS` digits left between the plain and the drawn ones, none are held out."""
    from digitlab.inference.refusal import MIN_THRESHOLD_DIGITS, Refusal, _calibrate, fitting_digits

    raw, drawn, held_out = fitting_digits(mnist.x_test[:2000])
    assert (len(raw), len(held_out)) == (1000, 0) and len(drawn) >= 690 and MIN_THRESHOLD_DIGITS > 2000 - 1000 - 700
    refusal = Refusal([0.0] * 6, [1.0] * 6, [1.0] * 6, 0.0, threshold=1.5, fitted_on={"digits_refused": 0.005})
    _calibrate(refusal, (held_out, np.zeros((0, 10)), None), (held_out, np.zeros((0, 10)), None))
    assert refusal.threshold == 1.5 and refusal.fitted_on["threshold_digits"].startswith("in-sample")


def test_mahalanobis_distance_is_to_the_nearest_class_mean():
    from scipy.spatial.distance import mahalanobis

    from digitlab.inference.feature_bank import FeatureBank

    rng = np.random.default_rng(0)
    labels = np.arange(600) % 10
    train = rng.normal(0, 1, (600, 6)) + labels[:, None] * np.array([1, 0, 0, 0, 0, 2.0])
    bank = FeatureBank.of(train, labels)
    means = np.stack([train[labels == c].mean(axis=0) for c in range(10)])
    centred = train - means[labels]
    precision = np.linalg.inv(centred.T @ centred / len(train) + 1e-3 * np.eye(6))
    queries = rng.normal(0, 3, (8, 6))
    expected = [min(mahalanobis(q, m, precision) ** 2 for m in means) for q in queries]
    np.testing.assert_allclose(bank.mahalanobis(queries), expected, rtol=1e-4)
    assert bank.conv_mahalanobis(queries) is None  # no convolution's part
    # features [penultimate, convolution]: each part its own distance, the first unchanged by the second
    conv = np.abs(rng.normal(0, 1, (600, 3))) + labels[:, None] * 0.5
    both = FeatureBank.of(np.hstack([train, conv]), labels, penultimate=6)
    conv_means = np.stack([conv[labels == c].mean(axis=0) for c in range(10)])
    conv_centred = conv - conv_means[labels]
    conv_precision = np.linalg.inv(conv_centred.T @ conv_centred / len(conv) + 1e-3 * np.eye(3))
    conv_queries = rng.normal(0, 3, (8, 3))
    conv_expected = [min(mahalanobis(q, m, conv_precision) ** 2 for m in conv_means) for q in conv_queries]
    joined = np.hstack([queries, conv_queries])
    np.testing.assert_allclose(both.mahalanobis(joined), expected, rtol=1e-4)
    np.testing.assert_allclose(both.conv_mahalanobis(joined), conv_expected, rtol=1e-4)
    assert both.bank.shape == (600, 6)  # the kNN bank holds the penultimate part
    with pytest.raises(ValueError, match="without labels"):
        FeatureBank.of(train).mahalanobis(queries)


def test_a_run_trained_on_served_copies_takes_its_penultimate_quantile_on_all_its_digits():
    """Drawn digits alone place the distance's quantile for an MNIST-trained network; plain and drawn together for
    one trained on served copies (which packs the drawn digits tighter than the plain ones)."""
    from digitlab.inference.feature_bank import FeatureBank
    from digitlab.inference.refusal import MAHALANOBIS_QUANTILE, Refusal, _join_mahalanobis

    rng = np.random.default_rng(0)
    labels = np.arange(1000) % 10
    centres = rng.normal(0, 5, (10, 4))
    bank = FeatureBank.of(centres[labels] + rng.normal(0, 1, (1000, 4)), labels)
    plain = centres[labels[:300]] + rng.normal(0, 2, (300, 4))  # wider than the drawn ones
    net = np.concatenate([plain, centres[labels[:300]] + rng.normal(0, 1, (300, 4))])
    x_drawn = rng.normal(0, 1, (300, 7))  # the regression below scores the first input

    def fitted(served_copies: bool) -> Refusal:
        refusal = Refusal([0.0] * 7, [1.0] * 7, [1.0] + [0.0] * 6, 0.0, 0.0, {"digits_refused": 0.005})
        refusal.bank = bank
        others = (rng.normal(3, 1, (50, 7)), rng.normal(0, 10, (50, 4)))
        _join_mahalanobis(refusal, x_drawn, net, 300, others, served_copies)
        return refusal

    distances = bank.mahalanobis(net)
    threshold = np.quantile(x_drawn[:, 0], 1 - 0.005)
    for refusal, digits in ((fitted(False), distances[300:]), (fitted(True), distances)):
        scale, offset = refusal.mahalanobis_map
        assert scale * np.quantile(digits, MAHALANOBIS_QUANTILE) + offset == pytest.approx(threshold)
    assert fitted(True).mahalanobis_map[0] < fitted(False).mahalanobis_map[0]  # the distance weighs less


def test_runtimes_without_features_get_the_six_feature_refusal(trained_run, mnist):
    from digitlab.inference.predictor import Predictor

    predictor = Predictor.load(trained_run, "keras", log=lambda *_: None)
    refusal = predictor.refusal()
    x = mnist.x_test[:50].astype(np.float32) / 255
    logits, net = predictor.forward(x)
    with_features = refusal.score(x, logits, net)
    without = refusal.score(x, logits)  # an imported model (no features): the plain refusal decides
    np.testing.assert_allclose(without, refusal.for_features(False).score(x, logits))
    assert not np.allclose(with_features, without)
    assert refusal.refuses(x, logits, net).mean() <= 0.1 and refusal.refuses(x, logits).mean() <= 0.1  # MNIST scans
