"""The analytics report: content, escaping, placeholders, Grad-CAM GIFs, and a real browser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import ROOT, BrightnessModel, chromium_path, natural_images, open_page, uniform_images, write_pngs

import augment

AUGMENTATIONS = ["Brighten", "SafeRotate", "GaussianBlur"]
HOSTILE = "<script>alert(1)</script>"


def tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3),
    )


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    files = write_pngs(folder / "imgs", uniform_images([40, 90, 120], (32, 32)) + natural_images((32, 40))[:2])
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=AUGMENTATIONS, batch_size=32,
                                       progress=False, model_id="brightness <v1>")
    augmenter.search_randomization_boundaries(files, [0, 0, HOSTILE, 1, 1], 0.1, folder / "analysis.json")
    model = tiny_cnn()
    html = augmenter.render_boundaries(folder / "analytics", torch_model=model, target_layers=[model[2]])
    return augmenter, Path(html), files


def test_report_has_a_sorted_summary_a_section_per_augmentation_and_a_gallery(searched):
    augmenter, html, _ = searched
    text = html.read_text()
    order = [row["augmentation"] for row in augmenter.analysis.summary_rows()]
    positions = [text.index(f'href="#aug-{name}"') for name in order]
    assert positions == sorted(positions) and order[0] == "Brighten"  # the brightness model breaks first there
    for name in AUGMENTATIONS:
        assert f'id="aug-{name}"' in text and f"gifs/{name}.gif" in text
    assert "Failure gallery" in text and "accuracy against the labels" in text
    assert "model brightness &lt;v1&gt;." in text  # the model_id the search ran with, escaped
    assert text.count("<svg") == 2 * len(AUGMENTATIONS) + 1  # two plots each, and the severity ranking
    assert text.count('id="severity-chart"') == 1
    for src in __import__("re").findall(r'src="([^"]+)"', text):
        assert (html.parent / src).is_file(), src  # every picture is in the folder: offline


def test_each_gif_has_one_frame_per_grid_intensity_with_a_heatmap(searched):
    augmenter, html, files = searched
    grid = augmenter.analysis.intensities
    for name in AUGMENTATIONS:
        frames = iio.imread(html.parent / "gifs" / f"{name}.gif", index=None)
        assert len(frames) == len(grid)
    # The uniform gray exemplar is colourless; a heatmap overlay makes the frame coloured.
    first = iio.imread(html.parent / "gifs" / "Brighten.gif", index=0)[..., :3].astype(int)
    assert np.abs(first[..., 0] - first[..., 2]).max() > 30


def test_user_text_is_escaped(searched):
    text = searched[1].read_text()
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_report_before_any_search_is_a_clear_error(tmp_path):
    augmenter = augment.ImageAugmenter(BrightnessModel())
    with pytest.raises(ValueError, match="run search_randomization_boundaries first"):
        augmenter.render_boundaries(tmp_path / "out")
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "report", "--cache",
                             str(tmp_path / "none.json")], capture_output=True, text=True)
    assert result.returncode == 2 and "no analysis file at" in result.stderr


def test_a_moved_source_image_leaves_a_placeholder(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images([40, 90]))
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    augmenter.search_randomization_boundaries(files, None, 0.25, tmp_path / "analysis.json")
    os.unlink(files[1])
    html = Path(augmenter.render_boundaries(tmp_path / "out")).read_text()
    assert "image missing: " + files[1] in html


@pytest.mark.parametrize("grid_sample", [0, 2])
def test_report_of_an_adaptive_search_plots_first_failures_and_names_the_sample(tmp_path, grid_sample):
    files = write_pngs(tmp_path / "imgs", uniform_images([20, 40, 70, 90, 110]))
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten", "Darken"], progress=False)
    augmenter.search_randomization_boundaries(files, None, 0.05, tmp_path / "analysis.json", strategy="adaptive",
                                              grid_sample=grid_sample)
    html = Path(augmenter.render_boundaries(tmp_path / "out")).read_text()
    assert f"the {grid_sample} images measured on the whole grid" in html
    assert html.count('stroke="#9467bd"') >= 2  # the "failed by" curve, from every image's first failure
    assert ("agreed with the full grid on 100%" in html) == (grid_sample > 0)
    assert ('stroke="#d62728"' in html) == (grid_sample > 0)  # changed share needs full-grid rows


def test_gradcam_frames_from_python_for_one_image_and_augmentation(tmp_path):
    model = tiny_cnn()
    image = natural_images((32, 32))[0]
    frames = augment.gradcam_frames(image, "SafeRotate", model, [model[2]], intensities=[0, 0.5, 1],
                                    method="GradCAM++")
    assert [f.intensity for f in frames] == [0, 0.5, 1]
    for frame in frames:
        assert frame.heatmap.shape == (32, 32) and 0 <= frame.heatmap.min() <= frame.heatmap.max() <= 1
        assert frame.overlay.shape == (32, 32, 3) and 0 <= frame.predicted < 3 and 0 < frame.confidence <= 1
    gif = augment.write_gradcam_gif(tmp_path / "rot.gif", image, "SafeRotate", model, [model[2]],
                                    intensities=[0, 0.25, 0.5], method="EigenCAM")
    assert len(iio.imread(gif, index=None)) == 3
    with pytest.raises(ValueError, match="unknown cam_method"):
        augment.gradcam_frames(image, "Hue", model, [model[2]], method="NoSuchCAM")


def test_report_cli_writes_the_page(searched, tmp_path):
    augmenter, html, _ = searched
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "report", "--cache", augmenter.analysis_path,
                             "--html-dir", str(tmp_path / "r")], capture_output=True, text=True)
    assert result.returncode == 0 and (tmp_path / "r" / "index.html").is_file()
    assert "report written" in result.stdout


@pytest.mark.browser
def test_report_in_a_real_browser(searched):
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    html = searched[1]
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, chromium, html, errors)
        page.on("request", lambda request: requests.append(request.url))
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
        slider = page.locator("input[type=range][data-aug=SafeRotate]")
        frame = page.locator("#frame-SafeRotate")
        before_src = frame.get_attribute("src")
        slider.fill("7")
        page.wait_for_function("document.getElementById('frame-SafeRotate').complete")
        after_src, caption = frame.get_attribute("src"), page.locator("#caption-SafeRotate").inner_text()
        after_width = frame.evaluate("e => e.naturalWidth")
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.locator("#aug-SafeRotate").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "report.png"))
        browser.close()
    assert not errors, errors
    assert images and all(width > 0 for _, width in images), [src for src, width in images if not width]
    assert before_src != after_src and after_src.endswith("-07.png") and after_width > 0
    assert "intensity 0.70" in caption
    assert all(url.startswith("file://") for url in requests), [u for u in requests if not u.startswith("file")]


# -- positional outputs are drawn, not printed ------------------------------------------------


@pytest.fixture(scope="module")
def mask_report(tmp_path_factory):
    from examples import shapes

    folder = tmp_path_factory.mktemp("masks")
    images, _ = shapes.make_shapes(6, seed=11, shapes="rectangles")
    files = write_pngs(folder / "imgs", [np.kron(image, np.ones((3, 3, 1), np.uint8)) for image in images])
    augmenter = augment.ImageAugmenter(shapes.predict_masks, shapes.mask_diff_error, label_format="mask",
                                       augmentations=["SafeRotate", "Brighten", "Darken"], batch_size=64,
                                       progress=False)
    augmenter.search_randomization_boundaries(files, None, 0.1, folder / "analysis.json")
    return augmenter, Path(augmenter.render_boundaries(folder / "analytics"))


def colour_pixels(path, colour, tolerance=40):
    picture = iio.imread(path)[..., :3].astype(int)
    return int((np.abs(picture - np.array(colour)).sum(axis=2) < tolerance).sum())


def test_masks_are_drawn_over_the_exemplars_and_frames_with_short_captions(mask_report):
    augmenter, html = mask_report
    text = html.read_text()
    assert len(text) < 120_000  # captions of whole masks made a 2.1 MB page
    captions = __import__("re").findall(r"<figcaption>(.*?)</figcaption>", text, flags=__import__("re").S)
    assert captions and max(len(c) for c in captions) < 400 and "[[" not in text and "..." not in text
    assert "drawn in" in text and "red" in text
    section = html.parent / "images" / "SafeRotate-exemplar-2.png"  # first failure, or last success
    section = section if section.exists() else html.parent / "images" / "SafeRotate-exemplar-1.png"
    assert colour_pixels(section, augment._OUTPUT_COLOUR) > 20  # the model's mask, tinted red
    frame = html.parent / "frames" / "SafeRotate-05.png"
    assert colour_pixels(frame, augment._OUTPUT_COLOUR) > 20 and colour_pixels(frame, augment._REFERENCE_COLOUR) > 5


@pytest.mark.browser
def test_a_mask_report_in_a_real_browser_shows_pictures_not_text(mask_report):
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    html = mask_report[1]
    errors = []
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, chromium, html, errors)
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("load")
        pictures = page.eval_on_selector_all("#aug-SafeRotate img", "els => els.map(e => e.naturalWidth)")
        longest = page.eval_on_selector_all("figcaption", "els => Math.max(...els.map(e => e.innerText.length))")
        page.locator("#aug-SafeRotate").scroll_into_view_if_needed()
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "report-masks.png"))
        browser.close()
    assert not errors, errors
    assert len(pictures) >= 4 and all(width > 0 for width in pictures)  # triptych, GIF, slider frame
    assert longest < 400


def test_plot_legends_lie_below_the_curves_never_over_them(searched):
    import re

    _, html, _ = searched
    svgs = re.findall(r'<svg[^>]*class="plot">.*?</svg>', html.read_text())
    plots = [svg for svg in svgs if "share of images" in svg]
    assert plots
    for svg in plots:
        axis = float(re.search(r'<text[^>]*y="([\d.]+)"[^>]*>augmentation intensity</text>', svg).group(1))
        legend = [float(y) for y in re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="10" height="3"', svg)]
        assert legend and min(legend) > axis, (axis, legend)


def test_a_report_right_after_an_array_search_without_a_cache_draws_the_arrays(tmp_path):
    arrays = uniform_images([30, 90, 150, 210], (24, 24))
    augmenter = augment.ImageAugmenter(lambda images: [int(np.asarray(i).mean() > 127) for i in images],
                                       augmentations=["Brighten", "Darken"], batch_size=64, progress=False)
    augmenter.search_randomization_boundaries(arrays, None, 0.25, analytics_cache=None)
    page = Path(augmenter.render_boundaries(tmp_path / "report")).read_text()
    assert "image missing" not in page and page.count('<img class="pixel"') >= 6
