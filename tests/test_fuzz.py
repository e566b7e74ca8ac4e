"""Property tests (Hypothesis): the catalogue on any accepted image; loading any analysis or manifest file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import augment

# The default run is derandomized, so CI runs the same examples every time (a failure
# is a change in the code, not a lucky draw); HYPOTHESIS_PROFILE=explore draws new,
# more numerous examples to look for bugs (see the README).
settings.register_profile("default", max_examples=60, derandomize=True)
settings.register_profile("explore", max_examples=1000, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Images with a side of one or two pixels, or much taller than wide: each size-based
# augmentation must stay at least one pixel wide (found by an explore run in CI:
# Downscale on 1x1, RandomSizedCrop on 2x1).
THIN_SHAPES = [(1, 1), (1, 2), (2, 1), (3, 3), (1, 48), (48, 1), (2, 9), (9, 2), (47, 5)]


@pytest.mark.parametrize("name", augment.ALL_AUGMENTATIONS + augment.EXTENDED_AUGMENTATIONS)
def test_every_augmentation_handles_one_pixel_and_thin_images(name):
    for height, width in THIN_SHAPES:
        image = (np.arange(height * width * 3).reshape(height, width, 3) * 37 % 256).astype(np.uint8)
        for intensity in (0.05, 0.5, 0.95, 1.0):
            out = augment.augment_image(image, name, intensity, seed=3)
            assert out.shape == (height, width, 3) and out.dtype == np.uint8, (height, width, intensity)


@st.composite
def images(draw):
    """Any size from 1x1, as gray (H, W), (H, W, 1), RGB or RGBA uint8."""
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    shape = (height, width) if channels is None else (height, width, channels)
    return draw(arrays(np.uint8, shape, elements=st.integers(0, 255)))


@FUZZ
@given(image=images(), name=st.sampled_from(augment.ALL_AUGMENTATIONS + augment.EXTENDED_AUGMENTATIONS),
       intensity=st.floats(0.0, 1.0, allow_nan=False), seed=st.integers(0, 2**32 - 1))
@example(image=np.zeros((1, 1), np.uint8), name="Downscale", intensity=1.0, seed=0)
@example(image=np.zeros((2, 1, 3), np.uint8), name="RandomSizedCrop", intensity=0.5, seed=0)
def test_any_accepted_image_any_intensity_gives_an_rgb_image_of_the_same_size(image, name, intensity, seed):
    out = augment.augment_image(image, name, intensity, seed)
    assert out.shape == (*image.shape[:2], 3) and out.dtype == np.uint8
    if image.ndim == 3 and image.shape[2] == 3 and intensity == 0.0:
        assert np.array_equal(out, image)


@FUZZ
@given(image=arrays(st.sampled_from([np.float32, np.int16, np.uint16, np.bool_]), (4, 4, 3)),
       name=st.sampled_from(augment.ALL_AUGMENTATIONS + augment.EXTENDED_AUGMENTATIONS))
def test_other_dtypes_are_a_clear_error(image, name):
    with pytest.raises(ValueError, match="uint8"):
        augment.augment_image(image, name, 0.5)


@FUZZ
@given(intensity=st.one_of(st.floats(allow_nan=True).filter(lambda v: not 0 <= v <= 1), st.text(max_size=3),
                           st.none(), st.booleans()))
@example(intensity="0")
@example(intensity=True)
def test_intensities_that_are_not_numbers_in_zero_one_are_a_clear_error(intensity):
    with pytest.raises(ValueError, match="intensity"):
        augment.augment_image(np.zeros((4, 4, 3), np.uint8), "Brighten", intensity)


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                     max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def valid_analysis(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "analysis.json"
    augment.ImageAugmenter(lambda imgs: [int(i.mean() > 127) for i in imgs], augmentations=["Brighten", "Hue"],
                           batch_size=8, progress=False).search_randomization_boundaries(
        [np.full((8, 8, 3), v, np.uint8) for v in (40, 90)], None, 0.25, path)
    return json.loads(path.read_text())


def mutate(data, draw):
    """Replace one value somewhere in a JSON document by another JSON value."""
    if isinstance(data, dict) and data:
        key = draw(st.sampled_from(sorted(data)))
        return {**data, key: mutate(data[key], draw) if draw(st.booleans()) else draw(JSON)}
    if isinstance(data, list) and data:
        index = draw(st.integers(0, len(data) - 1))
        return [*data[:index], mutate(data[index], draw) if draw(st.booleans()) else draw(JSON), *data[index + 1:]]
    return draw(JSON)


@FUZZ
@given(data=st.data())
def test_any_damaged_analysis_loads_or_is_a_value_error_naming_the_file(tmp_path_factory, valid_analysis, data):
    path = tmp_path_factory.mktemp("damaged") / "analysis.json"
    choice = data.draw(st.sampled_from(["mutated", "cut", "random"]))
    if choice == "mutated":
        text = json.dumps(mutate(valid_analysis, data.draw))
    elif choice == "cut":
        whole = json.dumps(valid_analysis)
        text = whole[:data.draw(st.integers(0, len(whole) - 1))]
    else:
        text = json.dumps(data.draw(JSON))
    path.write_text(text)
    try:
        analysis = augment.load_analysis(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    analysis.summary_rows()  # what loads must also be usable
    assert augment.Analysis.from_json(analysis.to_json()).to_json() == analysis.to_json()


@FUZZ
@given(lines=st.lists(st.one_of(JSON.map(json.dumps), st.text(max_size=30)), max_size=5),
       cut=st.booleans())
def test_any_manifest_reads_or_is_a_value_error_naming_the_line(tmp_path_factory, lines, cut):
    path = tmp_path_factory.mktemp("manifest") / "manifest.jsonl"
    text = "\n".join(line.replace("\n", " ") for line in lines) + ("" if cut else "\n")
    path.write_text(text)
    try:
        entries, truncated = augment.read_manifest(path, with_truncation=True)
    except ValueError as exc:
        assert "manifest" in str(exc) and "line" in str(exc)
        return
    assert truncated == bool(text.split("\n")[-1].strip())  # a whole file ends with a newline
    written = [line for line in text.split("\n")[:-1 if truncated else None] if line.strip()]
    assert len(entries) == len(written)  # every whole line is an entry: none dropped in silence
    assert [augment.SyntheticImage.from_json(e.to_json()) for e in entries] == entries
