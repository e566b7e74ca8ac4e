"""The public surface: names, signatures and the seed README's spellings."""

from __future__ import annotations

import inspect
import subprocess
import sys

from conftest import ROOT

import augment


def test_public_names_are_exported():
    for name in ["ImageAugmenter", "ALL_AUGMENTATIONS", "COLOR_AUGMENTATIONS", "DISTORTION_AUGMENTATIONS",
                 "PIXEL_DROPOUT_AUGMENTATIONS", "CATALOGUE", "augment_image", "load_analysis", "main"]:
        assert name in augment.__all__ and hasattr(augment, name)


def test_constructor_and_search_signatures_follow_the_contract():
    init = inspect.signature(augment.ImageAugmenter)
    assert list(init.parameters)[:4] == ["my_predict", "diff_error", "augmentations", "label_format"]
    assert init.parameters["augmentations"].default == augment.ALL_AUGMENTATIONS
    for keyword in ["seed", "batch_size"]:
        assert init.parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    search = inspect.signature(augment.ImageAugmenter.search_randomization_boundaries)
    assert search.parameters["step_size_percent"].default == 0.05
    assert search.parameters["analytics_cache"].default == "analysis.json"
    assert list(inspect.signature(augment.ImageAugmenter.evaluate).parameters) == ["self", "img_filenames",
                                                                                  "img_labels"]


def test_seed_readme_spellings_are_aliases():
    cls = augment.ImageAugmenter
    assert cls.searchRandomizationBoundries is cls.search_randomization_boundaries
    assert cls.renderBoundries is cls.render_boundaries
    assert cls.synthesizeMore is cls.synthesize_more


def test_setters_validate_and_store():
    augmenter = augment.ImageAugmenter(lambda x: 0, augmentations=["Hue", "Brighten"])
    augmenter.set_augmentation_realism("Hue", -0.5)
    augmenter.set_augmentation_weight("Brighten", 2)
    assert augmenter.realism_overrides == {"Hue": -0.5} and augmenter.weights["Brighten"] == 2.0
    for call, args, message in [
        (augmenter.set_augmentation_realism, ("Hue", 1.5), "realism for Hue must be <= 1.0, got 1.5"),
        (augmenter.set_augmentation_weight, ("Brighten", -1), r"Brighten must be in \[0.0, 1000000.0\], got -1"),
        (augmenter.set_augmentation_weight, ("Darken", 1), "not among this augmenter's augmentations"),
        (augmenter.set_augmentation_realism, ("Hues", 0.5), "Did you mean 'Hue'"),
    ]:
        try:
            call(*args)
        except ValueError as exc:
            assert __import__("re").search(message, str(exc)), str(exc)
        else:
            raise AssertionError(f"{call.__name__}{args} did not raise")


def test_import_is_light():
    code = "import sys, augment; print(sorted(m for m in ('torch', 'albumentations', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_module_runs_as_a_script():
    out = subprocess.run([sys.executable, "augment.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "search" in out.stdout


def test_docstring_examples_hold():
    import doctest

    result = doctest.testmod(augment, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 5


def test_every_public_name_has_a_docstring_with_an_example():
    for name in augment.__all__:
        value = getattr(augment, name)
        if isinstance(value, (list, dict, int, tuple)):
            continue  # the constants
        assert value.__doc__ and ">>>" in value.__doc__, f"{name} has no docstring example"
