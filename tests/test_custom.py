"""Your own augmentations: checked when registered, then searched (inline, in worker processes and
on Dask), cached by definition, reported, synthesized and drawn online like the built-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, BrightnessModel, natural_images, uniform_images, write_pngs
from test_transform import Repeated  # a module-level Dataset: spawned workers import it

import augment
from examples import custom_augmentations as custom

EXAMPLE = "examples/custom_augmentations.py"


@pytest.fixture(autouse=True)
def registered_here_only():
    """Each test starts with the example's two entries registered and leaves no other behind."""
    before = dict(augment.CATALOGUE)
    augment._adopt(custom.CUSTOM)
    yield
    augment.CATALOGUE.clear()
    augment.CATALOGUE.update(before)
    augment._thread_transform.cache_clear()


def never_identity(intensity, height, width):
    import albumentations as A

    return A.ImageCompression(quality_range=(60, 60), p=1)


def test_registration_checks_the_entry_on_probe_images_and_names_what_is_wrong():
    cases = [("a built-in", dict(name="Brighten", build=custom.jpeg)),
             ("extended one", dict(name="JPEG", build=custom.jpeg)),
             ("intensity 0 must be the identity", dict(name="Always", build=never_identity)),
             ("intensity 0 must be the identity", dict(  # a scale written backwards: strongest at 0
                 name="Reversed", function=lambda im, t, rng: (im * (1 - t) // 2).astype(np.uint8))),
             (r"shape \(48, 64\) and dtype uint8", dict(name="Gray", function=lambda im, t, rng: im[:, :, 0])),
             ("dtype float32", dict(name="Floats", function=lambda im, t, rng: im.astype(np.float32))),
             ("cannot be geometric", dict(name="Moves", function=lambda im, t, rng: im, geometric=True)),
             ("must build an albumentations DualTransform", dict(name="Flat", build=custom.jpeg, geometric=True)),
             ("on a 1x1 probe image raised IndexError", dict(name="Corner", function=lambda im, t, rng: (
                 im.astype(int) - im[1, 1] + im[1, 1]).astype(np.uint8))),
             ("name must be", dict(name="no spaces", build=custom.jpeg)),
             ("one of them", dict(name="Neither"))]
    for message, arguments in cases:
        with pytest.raises(augment.AugmentError, match=message):
            augment.register_augmentation(**arguments)
        assert arguments["name"] not in augment.CATALOGUE or arguments["name"] in ("Brighten", "JPEG")
    assert augment.ALL_AUGMENTATIONS[-1] == "Superpixels" and len(augment.ALL_AUGMENTATIONS) == 24
    assert "| CameraJPEG | digital |" in augment.catalogue_markdown()


def test_a_registered_augmentation_goes_everywhere_a_built_in_goes(tmp_path):
    files = write_pngs(tmp_path / "src", natural_images((48, 64))[:4])
    model = BrightnessModel()
    names = ["Brighten", "CameraJPEG", "SensorNoise"]
    augmenter = augment.ImageAugmenter(model, augmentations=names, batch_size=32, progress=False, seed=1)
    analysis = augmenter.search_randomization_boundaries(files, [0, 0, 1, 0], 0.1, tmp_path / "analysis.json",
                                                         strategy="adaptive", grid_sample=2)
    noise = augment.augment_image(augment.load_image(files[0]), "SensorNoise", 1.0, seed=3)
    assert np.abs(noise.astype(int) - augment.load_image(files[0])).mean() > 10  # it really augments
    assert analysis.curves["CameraJPEG"].definition == augment.CATALOGUE["CameraJPEG"].definition
    assert augment.load_analysis(tmp_path / "analysis.json").curves.keys() == set(names)
    page = augmenter.render_boundaries(tmp_path / "report")
    html = open(page, encoding="utf-8").read()
    assert "SensorNoise" in html and "JPEG quality 10" in html
    made, _ = augmenter.synthesize_more(files, [0, 0, 1, 0], realism=-1, count=12, output_dir=tmp_path / "made",
                                        min_random_augmentations=3, max_random_augmentations=3)
    used = {a["name"] for e in augment.read_manifest(tmp_path / "made" / "manifest.jsonl") for a in e.augmentations}
    assert used == set(names)
    assert set(augmenter.evaluate(made, [0] * len(made))["by_augmentation"]) == set(names)
    transform = augmenter.transform(-1, 3, 3, seed=0)
    transform(natural_images((32, 32))[0])
    assert {n for n, _ in transform.params["steps"]} == set(names)
    policy = augmenter.sampling_policy(0)
    policy.save(tmp_path / "policy.json")
    assert augment.SamplingPolicy.load(tmp_path / "policy.json") == policy


def test_a_changed_definition_re_searches_that_augmentation_only(tmp_path):
    files = write_pngs(tmp_path / "src", uniform_images([40, 90, 200], size=(16, 16)))
    cache = tmp_path / "analysis.json"

    def search(level):
        augment.register_augmentation("Lift", function=lambda im, t, rng, level=level: np.clip(
            im.astype(int) + round(level * t), 0, 255).astype(np.uint8))
        model = BrightnessModel()
        augmenter = augment.ImageAugmenter(model, augmentations=["Brighten", "Lift"], batch_size=16, progress=False)
        return augmenter.search_randomization_boundaries(files, None, 0.1, cache), model.calls

    first, calls = search(255)
    assert calls == 3 * (1 + 2 * 10) and first.curves["Lift"].first_failure_intensities[0] is not None
    again, calls = search(255)
    assert calls == 0  # nothing changed: all from the cache
    changed, calls = search(20)
    assert calls == 3 * (1 + 10)  # the sources once, then only Lift's renders
    assert changed.curves["Brighten"].diff_errors == first.curves["Brighten"].diff_errors
    assert changed.curves["Lift"].first_failure_intensities == [None, None, None]


def test_registered_augmentations_travel_to_worker_processes_and_dask(tmp_path):
    files = write_pngs(tmp_path / "src", natural_images((32, 40)))
    names = ["CameraJPEG", "SensorNoise"]

    def search(**options):
        augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=names, batch_size=32, progress=False)
        return augmenter.search_randomization_boundaries(files, None, 0.1, None, **options).to_json()

    inline = search(num_workers=0)
    assert search(num_workers=2)["augmentations"] == inline["augmentations"]
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert search(executor=client.get_executor())["augmentations"] == inline["augmentations"]
        local = augment.register_augmentation("Local", function=lambda im, t, rng: np.maximum(im, int(255 * t)))
        augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Local"], batch_size=32, progress=False)
        with pytest.warns(UserWarning, match="rendering in this process"):  # a lambda cannot go to workers
            augmenter.search_randomization_boundaries(files, None, 0.25, None, num_workers=2)
        shipped = augmenter.search_randomization_boundaries(files, None, 0.25, None, executor=client.get_executor())
        assert shipped.curves["Local"].searched_count == len(files) and local.name == "Local"  # cloudpickle ships it


def test_the_command_line_takes_augmentations_from_a_module(tmp_path):
    files = write_pngs(tmp_path / "imgs", natural_images((32, 32))[:3])
    cache = tmp_path / "analysis.json"

    def cli(*args):
        return subprocess.run([sys.executable, str(ROOT / "augment.py"), *map(str, args)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    search = cli("search", "--images", f"{tmp_path}/imgs/*.png", "--step", "0.25", "--cache", cache,
                 "--augmentations-from", f"{EXAMPLE}:CUSTOM", "--augmentations", "Brighten", "CameraJPEG")
    assert search.returncode == 0, search.stderr
    assert set(json.loads(cache.read_text())["augmentations"]) == {"Brighten", "CameraJPEG"}
    without = cli("report", "--cache", cache, "--html-dir", tmp_path / "r")
    assert without.returncode == 2 and "unknown augmentation in the analysis 'CameraJPEG'" in without.stderr
    assert "register_augmentation, or --augmentations-from" in without.stderr
    report = cli("report", "--cache", cache, "--html-dir", tmp_path / "r", "--augmentations-from",
                 f"{EXAMPLE}:CUSTOM")
    assert report.returncode == 0, report.stderr
    listed = cli("catalogue", "--augmentations-from", f"{EXAMPLE}:CUSTOM")
    assert "| SensorNoise | noise |" in listed.stdout and len(files) == 3
    wrong = cli("catalogue", "--augmentations-from", f"{EXAMPLE}:sensor_noise")
    assert wrong.returncode == 2 and "must name what register_augmentation returned" in wrong.stderr


def test_the_custom_augmentations_example_searches_reports_and_synthesizes(tmp_path, capsys):
    assert custom.main(["--images", "12", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "CameraJPEG" in printed and "SensorNoise" in printed and "20 synthetic images" in printed
    assert (tmp_path / "analytics" / "index.html").exists()


def test_registration_refuses_what_would_silently_mislead():
    import albumentations as A

    cases = [("geometric=True", dict(name="Flip2", build=lambda t, h, w: A.HorizontalFlip(p=1) if t else None)),
             ("p=1", dict(name="Sometimes", build=lambda t, h, w: A.ImageCompression(quality_range=(50, 50), p=0.5)
                           if t else None)),
             ("the same seed gave different pixels", dict(name="Unseeded", function=lambda im, t, rng: np.clip(
                 im + np.random.normal(0, 30 * t, im.shape), 0, 255).astype(np.uint8))),
             ("reads as\\) a built-in", dict(name="brighten", build=custom.jpeg))]
    for message, arguments in cases:
        with pytest.raises(augment.AugmentError, match=message):
            augment.register_augmentation(**arguments)

    def in_place(image, intensity, rng):
        image += np.uint8(round(50 * intensity))
        return image

    augment.register_augmentation("InPlace", function=in_place)
    image = np.full((8, 8, 3), 100, np.uint8)
    assert augment.augment_image(image, "InPlace", 1.0)[0, 0, 0] == 150 and image[0, 0, 0] == 100  # caller's intact


def dimmer(image, intensity, rng):
    """Module level, registered only inside a test: a spawned worker imports it, but only the
    pickled transform can tell that worker it is an augmentation."""
    return (image * (1 - 0.5 * intensity)).astype(np.uint8)


def test_a_spawned_dataloader_worker_knows_registered_augmentations():
    import torch

    augment.register_augmentation("Dimmer", function=dimmer)
    policy = augment.SamplingPolicy({"Dimmer": 0.5, "SensorNoise": 0.5}, fewest=2, most=2)
    transform = augment.RealismTransform(policy, seed=0)
    loader = torch.utils.data.DataLoader(Repeated(transform), batch_size=4, num_workers=1,
                                         multiprocessing_context="spawn")
    assert sum(len(images) for images, _ in loader) == 16


def test_a_registered_augmentation_that_fails_only_on_real_images_is_named_with_the_image(tmp_path):
    import albumentations as A

    files = write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100], (240, 240)))

    def flaky(image, intensity, rng):  # fine on the probes (up to 168x224), fails on the 240x240 images
        if intensity > 0.5 and image.shape[0] == 240:
            raise ValueError("my bug")
        return image

    augment.register_augmentation("FailsOnLarge", function=flaky)
    augment.register_augmentation("CropsLarge", geometric=True,
                                  build=lambda t, h, w: A.CenterCrop(80, 80, p=1) if t > 0 and h > 200 else None)
    model = augment.ImageAugmenter(BrightnessModel(), augmentations=["FailsOnLarge"], progress=False)
    with pytest.raises(ValueError, match="my bug") as raised:  # the user's error keeps its type
        model.search_randomization_boundaries(files, None, 0.1, None)
    assert any("while rendering FailsOnLarge at intensities" in note and "img-" in note
               for note in raised.value.__notes__)
    model = augment.ImageAugmenter(BrightnessModel(), augmentations=["CropsLarge"], progress=False)
    with pytest.raises(augment.AugmentError, match=r"CropsLarge at intensity 0.1 returned an image of shape \(80, 80"):
        model.search_randomization_boundaries(files, None, 0.1, None)


SPECKLES = '''
import numpy as np
import augment

FRACTION = {fraction}  # a module constant the augmentation reads through a helper


def _share(intensity):
    return FRACTION * intensity


def speckles(image, intensity, rng):
    """White specks on a share of the pixels of large images (small ones left alone)."""
    if min(image.shape[:2]) < 100:
        return image
    out = image.copy()
    out[rng.random(image.shape[:2]) < _share(intensity)] = 255
    return out


SPECKLES = augment.register_augmentation("Speckles", function=speckles)
'''


def test_a_changed_constant_of_a_registered_augmentations_module_searches_it_again(tmp_path):
    module = tmp_path / "speckles.py"
    files = write_pngs(tmp_path / "imgs", uniform_images([40, 80, 120], (120, 120)))
    command = [sys.executable, str(ROOT / "augment.py"), "search", "--predict", "tests/models/oracles.py:bright",
               "--images", *files, "--step", "0.1", "--cache", str(tmp_path / "a.json"),
               "--augmentations-from", f"{module}:SPECKLES", "--augmentations", "Speckles"]

    def search(fraction):
        module.write_text(SPECKLES.format(fraction=fraction))
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.split(" predictions this run")[0].rsplit("(", 1)[1])

    assert search(0.5) > 0
    assert search(0.5) == 0  # unchanged: the cache answers
    assert search(0.8) > 0  # the constant changed what the pixels are: searched again (was 0 predictions)


DEFINITIONS = '''
import functools, sys
sys.path.insert(0, sys.argv[2])
import numpy as np
import augment


def darken(image, intensity, rng, k=0.5):
    if "dark" in {"dark", "dim", "shade"}:  # a set literal: its order follows string hashing
        return (image * (1 - k * intensity)).astype(np.uint8)
    return image


class Dim:  # an instance with __call__
    def __init__(self):
        self.k = 0.3

    def __call__(self, image, intensity, rng):
        return (image * (1 - self.k * intensity)).astype(np.uint8)


made = {"set": darken, "instance": Dim(), "partial": functools.partial(darken, k=0.4)}[sys.argv[1]]
print(augment.register_augmentation("Mine", function=made).definition)
'''


@pytest.mark.parametrize("kind", ["set", "instance", "partial"])
def test_an_unchanged_definition_has_the_same_digest_in_every_process(tmp_path, kind):
    script = tmp_path / "definitions.py"
    script.write_text(DEFINITIONS)
    digests = {subprocess.run([sys.executable, str(script), kind, str(ROOT)], capture_output=True, text=True,
                              check=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
               for seed in (1, 2)}
    assert len(digests) == 1, digests  # the cache answers in a new process (was: searched again every time)


def test_a_registered_augmentation_that_fails_on_the_strength_copy_costs_only_its_own_strength(tmp_path):
    # the search renders at the image's own size; the perceptual strength renders on a 96 px copy, where
    # this one refuses to work: the search stands, with a warning that names it, and the others get theirs
    def picky(image, intensity, rng):
        if image.shape[0] == 96:
            raise RuntimeError(f"no {image.shape[0]} px images")
        return np.clip(image.astype(int) + round(200 * intensity), 0, 255).astype(np.uint8)

    augment.register_augmentation("Picky", function=picky)
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten", "Picky"], batch_size=16,
                                       progress=False)
    with pytest.warns(UserWarning, match=r"no perceptual strength for Picky \(RuntimeError: no 96 px images"):
        analysis = augmenter.search_randomization_boundaries(uniform_images([40, 90]), None, 0.1,
                                                             tmp_path / "analysis.json")
    assert analysis.curves["Picky"].first_failure_intensities[0] is not None
    assert analysis.curves["Picky"].perceptual_strength is None
    assert analysis.curves["Brighten"].perceptual_strength[-1] > 0
    assert "Picky" in augment.format_summary(augment.load_analysis(tmp_path / "analysis.json"))
