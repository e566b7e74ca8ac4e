"""Comparing models, per-class breakdowns and bootstrap intervals, on closed-form oracle models."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, chromium_path, open_page, uniform_images, write_pngs

import augment

STEP = 0.05
GRID = [round(k * STEP, 2) for k in range(21)]
# Uniform grey images, each at least 3 grey levels from a grid boundary of every oracle (cuts 110, 127, 200).
VALUES = [16, 28, 30, 41, 43, 54, 56, 67, 79, 81, 94, 107]


class Cut:
    """Says 1 when an image's mean is above ``cut``: under Brighten (adds 255 t) an image of
    value v < cut changes first at the smallest grid t with v + 255 t > cut; Darken never
    changes it; Hue does nothing to grey."""

    def __init__(self, cut: int):
        self.cut = cut

    def __call__(self, images):
        return [int(np.asarray(image).mean() > self.cut) for image in images]


def first_failure(value: int, cut: int) -> float | None:
    return next((t for t in GRID if value + 255 * t > cut), None)


def label(value: int) -> str:
    return "dark" if value < 70 else "mid"


def search(tmp_path, name, cut, values=VALUES, augmentations=("Brighten", "Darken", "Hue"), step=STEP,
           folder="images"):
    files = write_pngs(tmp_path / folder, uniform_images(values, (16, 16)), prefix=f"grey{len(values)}")
    augmenter = augment.ImageAugmenter(Cut(cut), augmentations=list(augmentations), batch_size=64, progress=False,
                                       model_id=name)
    path = tmp_path / f"{name}.json"
    augmenter.search_randomization_boundaries(files, [label(v) for v in values], step, path)
    return path


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    return {name: search(folder, name, cut) for name, cut in
            (("baseline", 127), ("robust", 200), ("twin", 127), ("fragile", 110))}


def test_the_oracles_first_failures_are_the_closed_form(three):
    analysis = augment.load_analysis(three["robust"])
    firsts = analysis.curves["Brighten"].first_failure_intensities
    assert firsts == [first_failure(v, 200) for v in VALUES]
    assert analysis.curves["Darken"].first_failure_intensities == [None] * len(VALUES)


def test_a_more_robust_model_improves_brighten_and_changes_nothing_else(three):
    comparison = augment.compare({"baseline": three["baseline"], "robust": three["robust"]})
    assert comparison.paired and comparison.names == ["baseline", "robust"]
    shifts = {s.augmentation: s for s in comparison.shifts}
    expected = np.mean([first_failure(v, 200) - first_failure(v, 127) for v in VALUES])
    brighten = shifts["Brighten"]
    assert brighten.verdict == "improved" and math.isclose(brighten.shift, expected, abs_tol=1e-4)
    assert 0 < brighten.interval[0] <= brighten.shift <= brighten.interval[1]
    assert brighten.images == len(VALUES) and brighten.paired
    for name in ("Darken", "Hue"):  # never changed by either: 1 + step on both sides
        assert shifts[name].verdict == "no measurable change" and shifts[name].shift == 0
        assert shifts[name].baseline_mean == shifts[name].model_mean == 1 + STEP
    assert comparison.shifts[0].augmentation == "Brighten"  # most improved first


def test_equal_models_show_no_measurable_change_and_a_worse_one_regresses(three):
    twin = augment.compare({"baseline": three["baseline"], "twin": three["twin"]})
    assert {s.verdict for s in twin.shifts} == {"no measurable change"}
    assert all(s.interval == (0.0, 0.0) for s in twin.shifts)
    worse = augment.compare({"robust": three["robust"], "baseline": three["baseline"], "fragile": three["fragile"]})
    verdicts = {(s.augmentation, s.model): s.verdict for s in worse.shifts}
    assert verdicts[("Brighten", "baseline")] == verdicts[("Brighten", "fragile")] == "regressed"
    # most regressed first among the regressions: fragile (cut 110) breaks earlier than baseline (127)
    regressed = [s.model for s in worse.shifts if s.verdict == "regressed"]
    assert regressed == ["fragile", "baseline"]


def test_different_image_sets_are_compared_unpaired_and_said_so(tmp_path, three):
    other = search(tmp_path, "other", 200, values=VALUES[::2], folder="other")
    comparison = augment.compare({"baseline": three["baseline"], "robust elsewhere": other})
    assert not comparison.paired
    assert any("image sets differ" in note and "compared unpaired" in note for note in comparison.notes)
    brighten = next(s for s in comparison.shifts if s.augmentation == "Brighten")
    expected = (np.mean([first_failure(v, 200) for v in VALUES[::2]]) -
                np.mean([first_failure(v, 127) for v in VALUES]))
    assert brighten.verdict == "improved" and not brighten.paired and math.isclose(brighten.shift, expected,
                                                                                     abs_tol=1e-4)


def test_other_step_sizes_and_augmentations_compare_the_overlap_and_say_what_was_left_out(tmp_path, three):
    coarse = search(tmp_path, "coarse", 200, augmentations=["Brighten", "Hue", "Contrast"], step=0.1)
    comparison = augment.compare({"baseline": three["baseline"], "coarse": coarse})
    assert {s.augmentation for s in comparison.shifts} == {"Brighten", "Hue"}
    notes = " | ".join(comparison.notes)
    assert "left out, only in baseline: Darken" in notes and "left out, only in coarse: Contrast" in notes
    assert "step sizes differ (baseline 0.05, coarse 0.1)" in notes
    assert next(s for s in comparison.shifts if s.augmentation == "Brighten").verdict == "improved"


def test_a_file_that_is_not_an_analysis_is_named_in_the_error(tmp_path, three):
    foreign = tmp_path / "results.json"
    foreign.write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(augment.AugmentError, match="results.json is not an augment.py analysis file"):
        augment.compare([three["baseline"], foreign])
    with pytest.raises(augment.AugmentError, match="two or more"):
        augment.compare([three["baseline"]])
    with pytest.raises(augment.AugmentError, match="no augmentation in common"):
        augment.compare([three["baseline"], search(tmp_path, "x", 127, augmentations=["Contrast"], folder="x")])


def test_the_class_breakdown_is_the_hand_computed_half_way_intensity(three):
    analysis = augment.load_analysis(three["baseline"])
    breakdown = analysis.by_class()["Brighten"]
    for name in ("dark", "mid"):
        firsts = sorted(first_failure(v, 127) for v in VALUES if label(v) == name)
        half = firsts[math.ceil(len(firsts) / 2) - 1]  # the lowest t by which half have changed
        assert breakdown[name] == {"images": len(firsts), "intensity_at_50": half,
                                   "mean_first_failure": round(sum(firsts) / len(firsts), 4)}
    stored = json.loads(three["baseline"].read_text())["augmentations"]["Brighten"]["summary"]["by_class"]
    assert stored == breakdown
    assert analysis.by_class()["Darken"]["dark"]["intensity_at_50"] is None  # never: shown as ">1"


def test_group_by_makes_the_classes_and_its_failure_names_the_image(tmp_path):
    files = write_pngs(tmp_path / "g", uniform_images([30, 60, 90, 120], (16, 16)))
    augmenter = augment.ImageAugmenter(Cut(127), augmentations=["Brighten"], progress=False, batch_size=8,
                                       group_by=lambda box_label: "big" if box_label["area"] > 10 else "small")
    analysis = augmenter.search_randomization_boundaries(files, [{"area": a} for a in (5, 50, 5, 50)], 0.1, None)
    assert set(analysis.by_class()["Brighten"]) == {"big", "small"}
    analysis.group_by = lambda label: label["missing"]
    with pytest.raises(augment.AugmentError, match=r"group_by failed on .*g/img-0.png"):
        analysis.by_class()


def test_one_model_gets_seeded_bootstrap_intervals_that_narrow_with_more_images(tmp_path, three):
    analysis = augment.load_analysis(three["baseline"])
    summary = analysis.curves["Brighten"].summarize()
    low, high = summary.intervals["intensity_at_50"]
    assert low <= summary.intensity_at_50 <= high
    assert summary.intervals == augment.load_analysis(three["baseline"]).curves["Brighten"].summarize().intervals
    stored = json.loads(three["baseline"].read_text())["augmentations"]["Brighten"]["summary"]
    assert stored["confidence_intervals"]["intensity_at_50"] == [low, high]
    assert stored["confidence_intervals"]["intensity_at_90"][1] is not None  # every image changes by 0.45
    many = search(tmp_path, "many", 127, values=list(range(10, 125)) * 2, augmentations=["Brighten"])
    wide = high - low
    many_low, many_high = augment.load_analysis(many).curves["Brighten"].summarize().intervals["intensity_at_50"]
    assert many_high - many_low < wide
    assert f"[{low:.2f}, {high:.2f}]" in augment.format_summary(analysis)


def test_compare_cli_prints_verdicts_and_writes_the_page(three, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "compare", str(three["baseline"]),
                             str(three["robust"]), "--names", "old", "new <b>", "--html-dir", str(tmp_path / "cmp")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("Brighten"))
    assert "improved" in line and "new <b>" in line
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert "new &lt;b&gt;" in page and "new <b>" not in page  # the user's names are escaped
    assert "percentile bootstrap over images" in page
    bad = subprocess.run([sys.executable, str(ROOT / "augment.py"), "compare", str(three["baseline"]),
                          str(tmp_path / "missing.json")], capture_output=True, text=True)
    assert bad.returncode != 0 and "missing.json" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.browser
def test_the_compare_page_in_a_real_browser(three, tmp_path):
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    comparison = augment.compare({"baseline": three["baseline"], "robust": three["robust"]},
                                 html_dir=tmp_path / "page")
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, chromium, comparison.page, errors)
        page.on("request", lambda request: requests.append(request.url))
        page.goto((tmp_path / "page" / "index.html").resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
        verdicts = page.locator("h2#summary + table td.improved").all_inner_texts()
        classes = page.locator("#by-class ~ div table.classes tbody tr").count()
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "compare.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert verdicts == ["improved"]
    assert len(images) >= 3 and all(width > 0 for _, width in images), images  # the Brighten exemplar strip
    assert classes == 3  # one row per shared augmentation and model
    assert all(url.startswith("file://") for url in requests), [u for u in requests if not u.startswith("file")]


# -- what a hostile review found: each a wrong number before its fix ---------------------------


def test_one_model_searched_at_two_step_sizes_shows_no_change(tmp_path):
    fine = search(tmp_path, "fine", 127, step=0.05, folder="same")
    coarse = search(tmp_path, "coarse", 127, step=0.1, folder="same")
    comparison = augment.compare([fine, coarse])
    assert comparison.step == 0.1 and comparison.paired
    assert {s.verdict for s in comparison.shifts} == {"no measurable change"}
    assert all(s.shift == 0 for s in comparison.shifts)  # "never" is 1 + the common step on both sides
    with pytest.raises(augment.AugmentError, match="no common grid"):
        augment.compare([coarse, search(tmp_path, "quarter", 127, step=0.25, folder="same")])


def test_arrays_pair_by_their_pixels_not_their_position():
    def analysis(values, cut=127):
        return augment.ImageAugmenter(Cut(cut), augmentations=["Brighten"], progress=False, batch_size=64) \
            .search_randomization_boundaries(uniform_images(values, (16, 16)), None, 0.05, None)

    shuffled = augment.compare({"a": analysis(VALUES), "b": analysis(VALUES[::-1])})
    assert shuffled.paired and shuffled.shifts[0].verdict == "no measurable change" and shuffled.shifts[0].shift == 0
    other = augment.compare({"a": analysis(VALUES[:6]), "b": analysis(VALUES[6:])})
    assert not other.paired and any("0 in common" in note for note in other.notes)


def test_a_skipped_image_is_left_out_of_the_pairs_and_named(tmp_path):
    def flaky(images):
        if any(np.asarray(image).shape[0] == 17 for image in images):
            raise RuntimeError("cannot read this one")
        return Cut(200)(images)

    arrays = uniform_images(VALUES, (16, 16))
    arrays[VALUES.index(54)] = np.full((17, 16, 3), 54, np.uint8)  # the one the model fails on
    files = write_pngs(tmp_path / "images", arrays)
    with pytest.warns(UserWarning, match="1 of 12 images skipped"):
        skipping = augment.ImageAugmenter(flaky, augmentations=["Brighten"], batch_size=1, progress=False,
                                          on_error="skip").search_randomization_boundaries(files, None, 0.05, None)
    base = augment.ImageAugmenter(Cut(127), augmentations=["Brighten"], batch_size=64, progress=False) \
        .search_randomization_boundaries(files, None, 0.05, None)
    comparison = augment.compare({"base": base, "skipping": skipping})
    shift = comparison.shifts[0]
    kept = [v for v in VALUES if v != 54]
    assert comparison.paired and shift.images == len(kept)
    assert math.isclose(shift.shift, np.mean([first_failure(v, 200) - first_failure(v, 127) for v in kept]),
                        abs_tol=1e-4)
    assert any("paired on the 11 images" in note and "1 of base's" in note for note in comparison.notes)


def test_a_repeated_file_counts_once(tmp_path):
    files = write_pngs(tmp_path / "images", uniform_images(VALUES, (16, 16)))
    twice = files + files[:3]
    analyses = [augment.ImageAugmenter(Cut(127), augmentations=["Brighten"], batch_size=64, progress=False)
                .search_randomization_boundaries(twice, None, 0.05, None) for _ in range(2)]
    comparison = augment.compare(analyses)
    assert comparison.paired and comparison.shifts[0].images == len(VALUES)
    assert comparison.shifts[0].interval == (0.0, 0.0)
    assert any("3 images repeat another" in note for note in comparison.notes)


def test_too_few_images_get_no_interval_and_no_verdict(tmp_path):
    few = [search(tmp_path, name, cut, values=VALUES[:3], augmentations=["Brighten"], folder="few")
           for name, cut in (("a", 127), ("b", 200))]
    shift = augment.compare(few).shifts[0]
    assert shift.verdict == "too few images" and shift.interval is None and shift.shift > 0
    summary = augment.load_analysis(few[0]).curves["Brighten"].summarize()
    assert summary.intervals == {} and summary.interval_text("intensity_at_50") == ""


def test_a_changed_definition_is_left_out_and_said(three):
    changed = augment.load_analysis(three["robust"])
    changed.curves["Brighten"].definition = "0123456789abcdef"
    comparison = augment.compare({"baseline": three["baseline"], "changed": changed})
    assert "Brighten" not in {s.augmentation for s in comparison.shifts}
    assert any("Brighten (the analyses measured different definitions" in note for note in comparison.notes)


def test_a_failing_group_by_stops_the_search_before_any_prediction(tmp_path):
    model = Cut(127)
    calls = []
    files = write_pngs(tmp_path / "g", uniform_images([30, 60, 90], (16, 16)))
    augmenter = augment.ImageAugmenter(lambda images: calls.append(len(images)) or model(images),
                                       augmentations=["Brighten"], batch_size=8, progress=False,
                                       group_by=lambda label: {"a": "x"}[label])
    with pytest.raises(augment.AugmentError, match=r"group_by failed on .*img-2.png \(label b\)"):
        augmenter.search_randomization_boundaries(files, ["a", "a", "b"], 0.1, tmp_path / "g.json")
    assert calls == []


def test_the_weakest_class_is_marked_only_when_a_class_is_weaker(three):
    analysis = augment.load_analysis(three["baseline"])
    classes, rows = augment._class_table(analysis.by_class(), ["Brighten", "Darken"])
    assert [name for name, _ in classes] == ["dark", "mid"]
    brighten, darken = rows
    assert [cell["weakest"] for cell in brighten["cells"]] == [False, True]  # mid images are nearer 127
    assert not any(cell["weakest"] for cell in darken["cells"])  # neither ever changes


def test_every_picture_gets_its_own_file_whatever_the_names(three, tmp_path):
    # the CLI's default names are the file paths: long ones once cut off "-original" and "-1"
    folder = tmp_path / ("a-very-long-folder-name-that-goes-on-and-on-for-the-sake-of-it" * 2)
    folder.mkdir()
    paths = []
    for name in ("baseline", "robust"):
        paths.append(folder / f"{name}.json")
        paths[-1].write_bytes(three[name].read_bytes())
        shutil.copytree(f"{three[name]}.rows", f"{paths[-1]}.rows")
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "compare", *map(str, paths), "--html-dir",
                             str(tmp_path / "cmp")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "cmp" / "index.html").read_text()
    sources = re.findall(r'<img[^>]* src="(images/[^"]+)"', page)
    titles = re.findall(r'<img[^>]* src="images/[^"]+"[^>]*alt="([^"]*)"', page)
    assert len(sources) >= 3 and len(set(sources)) == len(sources), sources
    assert len(list((tmp_path / "cmp" / "images").iterdir())) == len(sources), titles


def test_the_bootstrap_depends_on_what_is_compared_not_on_the_names(tmp_path):
    values = list(range(10, 125, 3))
    low, high = (search(tmp_path, name, cut, values=values, augmentations=["Brighten"], folder=name)
                 for name, cut in (("low", 127), ("high", 170)))  # shifts of 0.15 or 0.2: a real interval

    def intervals(names):
        comparison = augment.compare(dict(zip(names, (low, high))))
        return {shift.augmentation: shift.interval for shift in comparison.shifts}

    first = intervals(["low", "high"])
    assert first["Brighten"] is not None and first["Brighten"][0] != first["Brighten"][1]
    assert intervals(["B", "a much longer display name"]) == first == intervals(["x", "y"])


def test_an_interrupted_analysis_is_compared_on_its_searched_images_and_says_which_are_not(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images(list(range(20, 120, 10)), (16, 16)))
    calls = [0]

    def interrupted(images):  # Ctrl-C after 12 batches: the last checkpoint holds part of the images
        calls[0] += 1
        if calls[0] > 12:
            raise KeyboardInterrupt
        return [int(np.asarray(image).mean() > 100) for image in images]

    augmenter = augment.ImageAugmenter(interrupted, augmentations=["Brighten", "Darken"], batch_size=4,
                                       progress=False, checkpoint_seconds=0)
    with pytest.raises(KeyboardInterrupt):
        augmenter.search_randomization_boundaries(files, None, 0.1, tmp_path / "old.json")
    whole = augment.ImageAugmenter(Cut(90), augmentations=["Brighten", "Darken"], progress=False)
    whole.search_randomization_boundaries(files, None, 0.1, tmp_path / "new.json")
    searched = len(augment.load_analysis(tmp_path / "old.json").curves["Brighten"].searched)
    assert 0 < searched < 10
    comparison = augment.compare({"old": tmp_path / "old.json", "new": tmp_path / "new.json"},
                                 html_dir=tmp_path / "page")
    note = next(note for note in comparison.notes if note.startswith("old: "))
    assert "images are not searched under Brighten" in note and "img-9.png" not in note or "..." in note
    assert next(s for s in comparison.shifts if s.augmentation == "Brighten").images == searched
    assert "an interrupted search? run it again to finish it" in (tmp_path / "page" / "index.html").read_text()


def test_a_model_that_moves_every_image_both_ways_is_not_shown_as_an_identical_one(tmp_path):
    values = list(range(20, 110, 6))
    files = (write_pngs(tmp_path / "a", uniform_images(values, (16, 16)), prefix="small")
             + write_pngs(tmp_path / "b", uniform_images(values, (17, 17)), prefix="large"))

    def split(images):  # small images fail 0.1 later than the baseline, large ones 0.1 earlier
        return [int(np.asarray(i).mean() > (153 if np.asarray(i).shape[0] == 16 else 101)) for i in images]

    paths = {}
    for name, model in (("baseline", Cut(127)), ("twin", Cut(127)), ("split", split)):
        augmenter = augment.ImageAugmenter(model, augmentations=["Brighten"], progress=False, model_id=name)
        paths[name] = tmp_path / f"{name}.json"
        augmenter.search_randomization_boundaries(files, None, 0.05, paths[name])
    comparison = augment.compare(paths)
    twin, moved = (next(s for s in comparison.shifts if s.model == name) for name in ("twin", "split"))
    assert twin.moved == (0.0, 1.0, 0.0)
    assert moved.moved[0] > 0.4 and moved.moved[2] > 0.4 and moved.verdict == twin.verdict == "no measurable change"
    assert "earlier" in comparison.format() and f"{moved.moved[0]:.0%}" in comparison.format()
    assert moved.to_json()["moved"]["later"] == moved.moved[2]


def test_no_class_is_marked_weakest_when_every_class_holds_past_the_range():
    cells = {"a": {"intensity_at_50": None, "mean_first_failure": 0.9, "images": 3},
             "b": {"intensity_at_50": None, "mean_first_failure": 1.05, "images": 3}}
    _, (row,) = augment._class_table({"Hue": cells}, ["Hue"])
    assert [cell["text"] for cell in row["cells"]] == [">1", ">1"] and not any(c["weakest"] for c in row["cells"])
    cells["a"]["intensity_at_50"] = 0.6
    _, (row,) = augment._class_table({"Hue": cells}, ["Hue"])
    assert [cell["weakest"] for cell in row["cells"]] == [True, False]


def test_the_plot_caption_mentions_accuracy_only_where_it_is_drawn(three, tmp_path):
    unlabelled = {}
    for name, cut in (("a", 127), ("b", 150)):
        files = write_pngs(tmp_path / "imgs", uniform_images(VALUES, (16, 16)), prefix="grey")
        unlabelled[name] = tmp_path / f"{name}.json"
        augment.ImageAugmenter(Cut(cut), augmentations=["Brighten"], progress=False).search_randomization_boundaries(
            files, None, STEP, unlabelled[name])
    augment.compare(unlabelled, html_dir=tmp_path / "plain")
    augment.compare({name: three[name] for name in ("baseline", "robust")}, html_dir=tmp_path / "labelled")
    assert "dashed: accuracy" not in (tmp_path / "plain" / "index.html").read_text()
    assert "dashed: accuracy" in (tmp_path / "labelled" / "index.html").read_text()


def test_each_exemplar_is_written_once_and_shown(three, tmp_path):
    # robust and fragile both shift Brighten the most: one exemplar for it (with every model), no orphan pictures
    comparison = augment.compare(three, html_dir=tmp_path / "page")
    moved = {s.augmentation for s in comparison.shifts if s.verdict in ("improved", "regressed")}
    page = (tmp_path / "page" / "index.html").read_text()
    assert page.count("One image, every model") == min(3, len(moved)) >= 1
    shown = set(re.findall(r'src="(images/[^"]+)"', page))
    assert {f"images/{p.name}" for p in (tmp_path / "page" / "images").iterdir()} == shown


# -- searches given arrays: the pages draw them from the thumbnails kept beside the analysis -------


@pytest.mark.browser
def test_report_and_compare_of_an_array_search_show_every_picture_from_the_command_line(tmp_path):
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    values = [20, 35, 50, 65, 80, 95, 140, 155, 170, 185, 200, 215]
    arrays = [np.kron(image, np.ones((20, 20, 1), np.uint8))[:150, :200]  # one larger than the others
              if k == 0 else image for k, image in enumerate(uniform_images(values, (16, 16)))]
    paths = {}
    for name, cut in (("baseline", 127), ("robust", 200)):
        augmenter = augment.ImageAugmenter(Cut(cut), augmentations=["Brighten", "Darken"], batch_size=64,
                                           progress=False)
        paths[name] = tmp_path / f"{name}.json"
        augmenter.search_randomization_boundaries(arrays, [label(v) for v in values], 0.1, paths[name])
    kept = np.load(tmp_path / "baseline.json.rows" / "images.npz")
    assert len(kept.files) == len(values) + 1  # one exact copy per image (the same draws), and the keys
    assert sorted(kept[name].shape for name in kept.files if name != "keys") == sorted(a.shape for a in arrays)
    # as a user would, later and without the arrays: the command line reads only the files
    for args in (["report", "--cache", paths["baseline"], "--html-dir", tmp_path / "report"],
                 ["compare", paths["baseline"], paths["robust"], "--html-dir", tmp_path / "compare"]):
        result = subprocess.run([sys.executable, str(ROOT / "augment.py"), *map(str, args)], capture_output=True,
                                text=True, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr
    errors, seen = [], {}
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, chromium, tmp_path, errors)
        for name in ("report", "compare"):
            page.goto((tmp_path / name / "index.html").as_uri())
            page.wait_for_load_state("load")
            seen[name] = (page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), "
                                                            "e.naturalWidth])"), page.inner_text("body"))
        browser.close()
    assert not errors, errors
    for name, (images, text) in seen.items():
        assert len(images) >= 3 and all(width > 0 for _, width in images), (name, images)
        assert "image missing" not in text, name
    # without the copies, the placeholder says how to give the pictures
    (tmp_path / "baseline.json.rows" / "images.npz").unlink()
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "report", "--cache", str(paths["baseline"]),
                             "--html-dir", str(tmp_path / "bare")], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "bare" / "index.html").read_text()
    assert "image missing: array-" in page and "give the arrays again in Python (images=..." in page
    # a damaged copy is a placeholder, never a failed page; a copy saved elsewhere goes along
    (tmp_path / "baseline.json.rows" / "images.npz").write_bytes(b"PK\x03\x04 damaged")
    analysis = augment.load_analysis(paths["robust"])
    analysis.save(tmp_path / "moved" / "copy.json")
    assert (tmp_path / "moved" / "copy.json.rows" / "images.npz").exists()
    for args in (["report", "--cache", paths["baseline"], "--html-dir", tmp_path / "damaged"],
                 ["report", "--cache", tmp_path / "moved" / "copy.json", "--html-dir", tmp_path / "copied"]):
        result = subprocess.run([sys.executable, str(ROOT / "augment.py"), *map(str, args)], capture_output=True,
                                text=True, cwd=tmp_path, timeout=300)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "image missing" in (tmp_path / "damaged" / "index.html").read_text()
    assert "image missing" not in (tmp_path / "copied" / "index.html").read_text()
