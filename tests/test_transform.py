"""The training transform: synthesis's draw online, labels that follow the pixels, DataLoader
workers, and the policy file."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, BrightnessModel, natural_images, uniform_images, write_pngs

import augment

MIXED = ["Brighten", "Darken", "Hue", "GaussianBlur", "Sharpen", "SafeRotate", "Contrast", "PixelDropout"]
GEOMETRIC = {"SafeRotate": 0.6, "RandomSizedCrop": 0.6, "ElasticTransform": 0.6}


def searched(tmp_path, augmentations=MIXED):
    files = write_pngs(tmp_path / "src", uniform_images([40, 70, 100]))
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=augmentations, batch_size=16,
                                       progress=False, seed=3)
    augmenter.search_randomization_boundaries(files, None, 0.1, tmp_path / "analysis.json")
    if augmentations == MIXED:
        augmenter.set_augmentation_weight("Hue", 3)
        augmenter.set_augmentation_weight("SafeRotate", 0.5)
    return augmenter, files


def draws_table(draws, names):
    """(pick counts per augmentation, picks-per-image counts 1..3, {name: intensities / limit})."""
    picks = np.array([sum(name == n for steps in draws for n, _ in steps) for name in names])
    sizes = np.array([sum(len(steps) == k for steps in draws) for k in (1, 2, 3)])
    return picks, sizes


def test_the_transform_draws_what_synthesis_draws_and_makes_the_same_pixels(tmp_path):
    from scipy.stats import chi2_contingency, ks_2samp

    augmenter, files = searched(tmp_path)
    policy = augmenter.sampling_policy(0.5, 1, 3)
    assert policy.limits["Brighten"] == 0.2 and policy.limits["Darken"] == 1.0  # never changed: all of it
    augmenter.synthesize_more(files, realism=0.5, count=600, min_random_augmentations=1, max_random_augmentations=3,
                              output_dir=tmp_path / "made", preview_html=None)
    entries = augment.read_manifest(tmp_path / "made" / "manifest.jsonl")
    made = [[(a["name"], a["intensity"]) for a in e.augmentations] for e in entries]
    transform = augmenter.transform(0.5, 1, 3, seed=0)
    image = uniform_images([70])[0]
    online = []
    for _ in range(1500):
        transform(image)
        online.append(transform.params["steps"])
    names = list(policy.eligible)
    # Both sides are drawn with fixed seeds, so this test is deterministic; alpha = 0.001 per
    # comparison keeps an honest sampler far from the line (the control below is at p ~ 1e-30).
    for table in zip(draws_table(made, names), draws_table(online, names)):
        assert chi2_contingency(np.array(table)).pvalue > 0.001, table
    for name in names:
        ours = [t for steps in online for n, t in steps if n == name]
        theirs = [t for steps in made for n, t in steps if n == name]
        assert max(ours + theirs) <= policy.limits[name]
        if policy.limits[name] > 0:
            assert ks_2samp(ours, theirs).pvalue > 0.001, name
    skewed = augment.SamplingPolicy(policy.limits, dict(policy.weights, Hue=1.0), 1, 3)  # the control
    rng = np.random.default_rng(0)
    control = [skewed.sample(rng)[0] for _ in range(1500)]
    assert chi2_contingency(np.array([draws_table(made, names)[0], draws_table(control, names)[0]])).pvalue < 1e-6
    # One applier: the same draw gives synthesis's pixels, the transform's pixels, augment_with_labels'.
    for entry in entries[:5]:
        source = augment.load_image(entry.source_file)
        steps = [(a["name"], a["intensity"]) for a in entry.augmentations]
        expected, _ = augment.augment_with_labels(source, steps, [], None, seed=entry.seed)
        assert np.array_equal(augment.load_image(tmp_path / "made" / entry.file), expected)
    photo = natural_images()[0]
    out = transform(photo)
    expected, _ = augment.augment_with_labels(photo, transform.params["steps"], [], None, seed=transform.params["seed"])
    assert np.array_equal(out, expected)


def test_every_draw_of_the_image_only_path_is_the_pixels_of_the_labelled_path():
    # The positional call folds runs of pointwise colour steps into one lookup table and skips
    # seeding what draws nothing; the labelled path applies each transform in an A.Compose.
    photo = natural_images((48, 64))[1]
    transform = augment.RealismTransform(augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 1.0),
                                                                fewest=4, most=10), seed=3)
    folded = 0
    for _ in range(150):
        out = transform(photo)
        steps, seed = transform.params["steps"], transform.params["seed"]
        folded += any(a in augment._POINTWISE and b in augment._POINTWISE for (a, _), (b, _) in zip(steps, steps[1:]))
        expected, _ = augment.augment_with_labels(photo, steps, [], None, seed=seed)
        assert np.array_equal(out, expected), steps
    assert folded >= 20  # the folded tables were exercised, not only single steps


def scene():
    """A black 64x80 image with one white rectangle (rows 20..39, columns 24..51) and its box."""
    image = np.zeros((64, 80, 3), np.uint8)
    image[20:40, 24:52] = 255
    return image, [24.0, 20.0, 52.0, 40.0]


def pixel_box(image):
    ys, xs = np.nonzero(image[:, :, 0] > 127)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else None


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


@pytest.mark.parametrize("inside_compose", [False, True])
def test_boxes_points_and_masks_follow_the_pixels_in_the_keyword_form(inside_compose):
    import albumentations as A

    image, box = scene()
    policy = augment.SamplingPolicy(GEOMETRIC, fewest=1, most=3)
    corners = [[24.5, 20.5], [50.5, 20.5], [50.5, 38.5], [24.5, 38.5]]
    ious, checked_points = [], 0
    for label_format, key, value in [("pascal_voc", "bboxes", [box + ["rectangle"]]), ("keypoints", "keypoints",
                                     [p + [k] for k, p in enumerate(corners)]), ("mask", "mask", image[:, :, 0] > 0)]:
        transform = augment.RealismTransform(policy, label_format, seed=7)
        if inside_compose:  # albumentations moves every target; label fields ride along
            params = ({"bbox_params": A.BboxParams(format="pascal_voc", label_fields=["names"], clip=True)}
                      if key == "bboxes" else {"keypoint_params": A.KeypointParams(format="xy", label_fields=[
                          "names"], remove_invisible=False)} if key == "keypoints" else {})
            pipeline = A.Compose([transform], **params)
            rows = [row[:-1] for row in value] if key != "mask" else value.astype(np.uint8)
            extra = {"names": [row[-1] for row in value]} if key != "mask" else {}
        for _ in range(25):
            if inside_compose:
                out = pipeline(image=image, **{key: rows}, **extra)
                moved = [list(row) + [name] for row, name in zip(out[key], out["names"])] if extra else out[key]
            else:
                out = transform(image=image, **{key: value})
                moved = out[key]
            assert transform.params["steps"] and all(n in GEOMETRIC for n, _ in transform.params["steps"])
            truth = pixel_box(out["image"])
            if key == "bboxes" and truth:
                assert moved and moved[0][-1] == "rectangle"
                ious.append(iou(moved[0][:4], truth))
            elif key == "keypoints":
                assert [p[-1] for p in moved] == [0, 1, 2, 3]  # kept, in order, even outside the frame
                for x, y, _ in moved:
                    if 2 <= x < 78 and 2 <= y < 62:
                        patch = out["image"][int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3, 0]
                        assert patch.max() > 127, (x, y, transform.params)
                        checked_points += 1
            elif key == "mask":
                mask, pixels = np.asarray(moved) > 0, out["image"][:, :, 0] > 127
                assert (mask & pixels).sum() >= 0.85 * max(1, (mask | pixels).sum()), transform.params
    assert np.median(ious) > 0.9 and min(ious) > 0.7, sorted(ious)[:5]  # unmoved: median 0.48
    assert checked_points >= 50


def test_plain_calls_keep_the_form_they_were_given():
    import torch
    from PIL import Image

    transform = augment.RealismTransform(augment.SamplingPolicy({"Hue": 0.5, "SafeRotate": 0.3}, fewest=2, most=2),
                                         seed=1)
    photo = natural_images((32, 40))[1]
    assert transform(photo).shape == (32, 40, 3)
    assert transform(photo[:, :, 0]).shape == (32, 40) and transform(photo[:, :, :1]).shape == (32, 40, 1)
    assert transform(Image.fromarray(photo)).mode == "RGB" and transform(Image.fromarray(photo[:, :, 0])).mode == "L"
    assert transform(Image.fromarray(photo).convert("RGBA")).size == (40, 32)
    tensor = torch.from_numpy(photo).permute(2, 0, 1)
    assert transform(tensor).shape == (3, 32, 40) and transform(tensor[:1]).dtype == torch.uint8
    with pytest.raises(augment.AugmentError, match="uint8"):
        transform(photo.astype(np.float32))
    with pytest.raises(augment.AugmentError, match="before ToDtype"):
        transform(tensor.float())
    with pytest.raises(augment.AugmentError, match="label_format"):
        transform(image=photo, bboxes=[[1, 1, 5, 5]])  # this transform does not know what the boxes are
    never = augment.RealismTransform(transform.policy, seed=1, p=0.0)
    assert never(photo) is photo and never.params == {}
    half = augment.RealismTransform(transform.policy, seed=1, p=0.5)
    assert 80 < sum(bool(half(photo[:4, :4]) is not None and half.params) for _ in range(200)) < 120


def test_seeded_transforms_repeat_and_a_seeded_compose_seeds_them():
    import albumentations as A

    policy = augment.SamplingPolicy({name: 0.4 for name in MIXED}, fewest=1, most=4)
    photo = natural_images((32, 32))[2]

    def stream(transform, n=20):
        return [transform(photo).tobytes() for _ in range(n)]

    assert stream(augment.RealismTransform(policy, seed=5)) == stream(augment.RealismTransform(policy, seed=5))
    assert stream(augment.RealismTransform(policy, seed=5)) != stream(augment.RealismTransform(policy, seed=6))
    composed = [[A.Compose([augment.RealismTransform(policy)], seed=9)(image=photo)["image"].tobytes()
                 for _ in range(1)] for _ in range(2)]
    assert composed[0] == composed[1]
    copy = pickle.loads(pickle.dumps(augment.RealismTransform(policy, seed=5)))
    assert type(copy) is augment.RealismTransform and stream(copy) == stream(augment.RealismTransform(policy, seed=5))
    extended = augment.SamplingPolicy(dict.fromkeys(augment.EXTENDED_AUGMENTATIONS, 0.5))  # every process has these
    assert pickle.loads(pickle.dumps(augment.RealismTransform(extended, seed=1)))._custom == ()


class Repeated:
    """A tiny Dataset: one photo through the transform, with the worker that made it."""

    def __init__(self, transform):
        self.transform, self.photo = transform, natural_images((24, 24))[0]

    def __len__(self):
        return 16

    def __getitem__(self, k):
        import torch

        return torch.from_numpy(self.transform(self.photo)), torch.utils.data.get_worker_info().id


def loader_stream(seed, torch_seed=0, context=None, epochs=2):
    import torch

    policy = augment.SamplingPolicy({name: 0.5 for name in MIXED}, fewest=1, most=3)
    torch.manual_seed(torch_seed)
    loader = torch.utils.data.DataLoader(Repeated(augment.RealismTransform(policy, seed=seed)), batch_size=4,
                                         num_workers=2, multiprocessing_context=context)
    return [[(bytes(image.numpy().tobytes()), int(worker)) for image, worker in zip(*batch)]
            for _ in range(epochs) for batch in loader]


def test_dataloader_workers_draw_distinct_streams_that_repeat_when_seeded():
    first = loader_stream(0)
    by_worker = {w: [image for batch in first[:4] for image, worker in batch if worker == w] for w in (0, 1)}
    assert set(by_worker[0]).isdisjoint(by_worker[1])  # each worker its own stream
    assert {i for b in first[:4] for i, _ in b}.isdisjoint({i for b in first[4:] for i, _ in b})  # epochs differ
    assert loader_stream(0) == first  # same seed, workers and torch seed: the same stream
    assert loader_stream(1) != first and loader_stream(0, torch_seed=1) != first
    assert loader_stream(0, context="spawn", epochs=1) == first[:4]  # pickled into fresh processes, same stream


def test_policy_files_round_trip_and_bad_ones_are_named(tmp_path):
    augmenter, _ = searched(tmp_path)
    policy = augmenter.sampling_policy(0)
    path = policy.save(tmp_path / "policy.json")
    document = json.loads(open(path).read())
    assert document["augmentations"][0] == {"name": "Brighten", "family": "brightness", "min_intensity": 0.0,
                                            "max_intensity": 0.3,
                                            "weight": 1.0}
    assert augment.SamplingPolicy.load(path) == policy and document["realism"] == 0.0
    photo = natural_images((24, 24))[3]
    from_file = augment.RealismTransform(path, seed=2)
    assert [from_file(photo).tobytes() for _ in range(5)] == [
        t(photo).tobytes() for t in [augment.RealismTransform(policy, seed=2)] for _ in range(5)]
    assert augment.file_schema("policy")["properties"]["augmentations"]["type"] == "array"
    bad = {"is not JSON": "{", "not an augment.py policy file": "[]",
           "newer than this augment.py reads": dict(document, version=99),
           "catalogue_version 99, newer": dict(document, catalogue_version=99),
           "does not know .*did you mean 'Brighten'": dict(document, augmentations=[
               dict(document["augmentations"][0], name="Brigthen")]),
           r"augmentations\.0\.max_intensity": dict(document, augmentations=[
               dict(document["augmentations"][0], max_intensity=1.5)]),
           "another catalogue": dict(document, augmentations=[dict(document["augmentations"][0], family="blur")]),
           "fewest <= most": dict(document, min_augmentations=5, max_augmentations=2)}
    for message, content in bad.items():
        broken = tmp_path / "broken.json"
        broken.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(augment.AugmentError, match=message) as caught:
            augment.RealismTransform(broken)
        assert "broken.json" in str(caught.value), message


def test_the_policy_command_writes_a_file_a_transform_loads(tmp_path):
    augmenter, _ = searched(tmp_path, ["Brighten", "Hue"])
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "policy", "--cache",
                             str(tmp_path / "analysis.json"), "--realism", "0", "--out", str(tmp_path / "p.json"),
                             "--min-augmentations", "1", "--max-augmentations", "2"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Brighten 0.3" in result.stdout
    policy = augment.SamplingPolicy.load(tmp_path / "p.json")
    assert policy.limits == {"Brighten": 0.3, "Hue": 1.0} and (policy.fewest, policy.most) == (1, 2)


def test_the_training_example_runs_at_small_size(tmp_path, capsys):
    from examples import train_with_transform

    assert train_with_transform.main(["--epochs", "6", "--search-images", "40", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    clean = float(printed.split("retrained with the transform: clean test accuracy ")[1].split(";")[0])
    assert "the bundled CNN (without): clean test accuracy" in printed
    assert clean > 0.2 and (tmp_path / "policy.json").exists()  # it learnt: chance is 0.1 (6 epochs, 40 images)


def test_compose_extras_move_and_a_composed_transform_is_not_misused():
    import albumentations as A

    policy = augment.SamplingPolicy({"SafeRotate": 0.8}, fewest=1, most=1)
    image, mask = natural_images((40, 48))[0], (natural_images((40, 48))[0][:, :, 0] > 100).astype(np.uint8)
    pipeline = A.Compose([augment.RealismTransform(policy, seed=1)],
                         additional_targets={"image2": "image", "mask2": "mask"})
    out = pipeline(image=image, image2=image.copy(), mask=mask, mask2=mask.copy())
    assert not np.array_equal(out["image"], image)  # moved, and the pairs stay aligned
    assert np.array_equal(out["image2"], out["image"]) and np.array_equal(out["mask2"], out["mask"])
    transform = augment.RealismTransform(policy, "pascal_voc", seed=1)
    A.Compose([transform])  # no bbox_params: the transform now belongs to it
    with pytest.raises(augment.AugmentError, match="belongs to an A.Compose"):
        transform(image=image, bboxes=[[2, 2, 20, 20]])
    coco = augment.RealismTransform(policy, {"bbox_params": {"format": "coco", "label_fields": ["labels"]}}, seed=1)
    with pytest.raises(augment.AugmentError, match="mask=... is not among"):
        coco(image=image, bboxes=[[2, 2, 9, 9]], labels=["a"], mask=mask)
    assert coco(image=image, bboxes=None, labels=None)["image"].shape == image.shape


def test_policies_refuse_duplicates_and_unbounded_values(tmp_path):
    policy = augment.SamplingPolicy({"Brighten": 0.3, "Hue": 0.2}, fewest=1, most=2)
    document = policy.to_json()
    document["augmentations"].append(dict(document["augmentations"][0]))
    (tmp_path / "twice.json").write_text(json.dumps(document))
    with pytest.raises(augment.AugmentError, match="lists Brighten more than once"):
        augment.SamplingPolicy.load(tmp_path / "twice.json")
    (tmp_path / "bom.json").write_text("\ufeff" + json.dumps(policy.to_json()), encoding="utf-8")
    assert augment.SamplingPolicy.load(tmp_path / "bom.json").limits == policy.limits
    for options, message in [({"weights": {"Brighten": float("inf")}}, r"must be in \[0.0, 1000000.0\], got inf"),
                             ({"weights": {"Sharpen": 1.0}}, "among the limits"),
                             ({"floors": {"Sharpen": 0.1}}, "no limit"), ({"most": 2**40}, "at most 1000")]:
        with pytest.raises(augment.AugmentError, match=message):
            augment.SamplingPolicy({"Brighten": 0.3}, **options)


LAMBDA_IN_SPAWNED_WORKERS = """
import sys
sys.path.insert(0, sys.argv[1])
import copy
import numpy as np, torch
import augment

class Images(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.transform = transform
    def __len__(self):
        return 4
    def __getitem__(self, k):
        return torch.from_numpy(self.transform(np.zeros((8, 8, 3), np.uint8)))

if __name__ == "__main__":
    augment.register_augmentation("Invert", function=lambda image, t, rng: 255 - image if t > 0.5 else image)
    transform = augment.RealismTransform(augment.SamplingPolicy({"Invert": 1.0}, fewest=1, most=1), seed=0)
    print("copied", copy.deepcopy(transform)(np.zeros((4, 4, 3), np.uint8)).max())  # in this process: fine
    list(torch.utils.data.DataLoader(Images(transform), num_workers=1, multiprocessing_context="spawn"))
"""


def test_a_lambda_augmentation_in_a_spawned_worker_is_named_not_a_bare_pickling_error(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(LAMBDA_IN_SPAWNED_WORKERS)
    result = subprocess.run([sys.executable, str(script), str(ROOT)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode != 0 and "copied 255" in result.stdout
    assert "augmentation 'Invert' could not come to this process" in result.stderr, result.stderr[-2000:]
    assert "defined at the top level of a module" in result.stderr


def test_no_draw_holds_a_step_that_changes_nothing():
    policy = augment.SamplingPolicy({"Brighten": 0.3, "Hue": 0.0, "SafeRotate": 0.02, "Darken": 0.5}, fewest=3,
                                    most=3)
    rng = np.random.default_rng(0)
    draws = [policy.sample(rng)[0] for _ in range(2000)]
    steps = [step for draw in draws for step in draw]
    assert all(intensity > 0 for _, intensity in steps) and "Hue" not in {name for name, _ in steps}
    families = {augment.CATALOGUE[name].family for name in ("Brighten", "SafeRotate", "Darken")}
    assert all(len(draw) == min(3, len(families)) for draw in draws)  # as many real steps as asked and allowed
    identity = augment.SamplingPolicy({"Brighten": 0.0, "Hue": 0.0}, fewest=1, most=2)  # realism 1's limits
    assert identity.sample(rng)[0] == []


def test_the_transform_takes_what_the_search_takes_16_bit_float_and_rgba(tmp_path):
    from PIL import Image

    identity = augment.RealismTransform(augment.SamplingPolicy({"Brighten": 0.0}, fewest=1, most=1), seed=0)
    wide = Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16))  # mode I;16
    wide.save(tmp_path / "wide.png")
    floats = Image.fromarray(np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64))  # mode F
    floats.save(tmp_path / "floats.tiff")
    for image, path in ((wide, "wide.png"), (floats, "floats.tiff")):
        out = np.asarray(identity(image))  # a limit-0 policy: exactly the image load_image reads
        assert np.array_equal(out, augment.load_image(tmp_path / path)), image.mode
        assert 20 < out.mean() < 235  # not clipped to white or black (convert("RGB") did that)
    rgba = np.dstack([np.full((6, 5, 3), 90, np.uint8), np.zeros((6, 5, 1), np.uint8)])
    assert np.array_equal(identity(rgba), augment.load_image(rgba)) and identity(rgba).shape == (6, 5, 3)
    with pytest.raises(augment.AugmentError, match="uint8 array"):
        identity(np.zeros((4, 4, 3), np.float32))


def test_without_workers_a_transform_is_one_stream_and_a_new_one_repeats_it():
    import torch

    policy = augment.SamplingPolicy({name: 0.5 for name in MIXED}, fewest=1, most=3)

    photo = natural_images((24, 24))[0]

    def run(transform):
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader([photo] * 16, batch_size=4, num_workers=0,
                                             collate_fn=lambda batch: [transform(image) for image in batch])
        return [bytes(image.tobytes()) for batch in loader for image in batch]

    reused = augment.RealismTransform(policy, seed=3)
    first = run(reused)
    assert run(reused) != first  # the same object goes on: torch.manual_seed does not restart it (README)
    assert run(augment.RealismTransform(policy, seed=3)) == first  # a new one with the seed repeats the run


def test_policies_take_numpy_numbers_and_refuse_giant_integers(tmp_path):
    policy = augment.SamplingPolicy({"Brighten": np.float32(0.25)}, weights={"Brighten": np.int64(2)})
    policy.save(tmp_path / "p.json")  # numpy numbers once made save fail
    assert augment.SamplingPolicy.load(tmp_path / "p.json").limits == {"Brighten": 0.25}
    with pytest.raises(augment.AugmentError, match="weight for Brighten must be in"):
        augment.SamplingPolicy({"Brighten": 0.3}, weights={"Brighten": 10**400})  # not an OverflowError
    every = augment.SamplingPolicy({"Brighten": 0.3, "Hue": 0.2}, fewest=np.int64(1), most=np.int64(2),
                                   realism=np.float32(0.5), floors={"Brighten": np.float16(0.125)})
    every.save(tmp_path / "every.json")
    assert augment.SamplingPolicy.load(tmp_path / "every.json").floors == {"Brighten": 0.125}


def test_with_p_below_one_every_call_returns_one_form():
    from PIL import Image

    t = augment.RealismTransform(augment.SamplingPolicy({"Brighten": 0.5, "Hue": 0.5}), seed=0, p=0.5)
    rgba = np.full((8, 8, 4), 120, np.uint8)
    assert {t(rgba).shape for _ in range(40)} == {(8, 8, 3)}  # (augmented or not: never (8, 8, 4))
    wide = Image.fromarray((np.arange(64).reshape(8, 8) * 900).astype(np.uint16))
    assert {t(wide).mode for _ in range(40)} == {"RGB"}
    plain = np.full((8, 8, 3), 120, np.uint8)
    assert {t(plain).shape for _ in range(40)} == {(8, 8, 3)}
