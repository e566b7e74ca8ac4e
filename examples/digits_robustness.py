"""Do the measured boundaries make the digits CNN more robust than a model-blind catalogue? A retraining study.

    python examples/digits_robustness.py            # about 100 minutes on 2 cores (3 splits x 10 seeds)
    python examples/digits_robustness.py --quick    # a smoke run (the tests use it)

The protocol, fixed before any figure was seen:

1. **Splits**: ``--splits`` different train/validation/test splits of the 1,797 bundled digits
   (split ``s`` shuffles with seed ``s``: 25 % test, then 15 % of the rest validation, the
   rest training). Every model trains on the training part only.
2. **Tuning on validation** (``--tuning-seeds`` seeds per split, seeds 100, 101, ...): the
   baseline CNN is trained and its boundaries searched (adaptive search on ``--search-images``
   training digits); then every candidate of every family is trained with the same budget:
   augment.py's transform at realism 0.5, 0 and -0.5; RandAugment at magnitude 5, 9 and 13;
   TrivialAugment in its standard space (RandAugment's operations, one per image, magnitude
   uniform over the 31 bins) and in torchvision's wide space; AugMix (the paper's operation
   set, ``all_ops=False``, no JSD loss: every arm trains with the same loss) at severity 1 and
   3. Each family's choice is the candidate with the lowest mean CE on the **validation
   digits** under ImageNet-C's four *validation* corruptions (speckle noise, Gaussian blur,
   spatter, saturate: Hendrycks & Dietterich set them apart for exactly this), ties broken by
   validation accuracy. No test digit is used to choose.
3. **Main runs** (``--seeds`` seeds per split, seeds 0, 1, ...): baseline; the chosen realism;
   two controls that isolate the measured boundaries: the **model-blind catalogue** (the same
   operations, stacking, weights and share of each batch, every limit flat at the strength
   whose mean drawn intensity equals the realism arm's) and **shuffled limits** (the realism
   arm's positive limits permuted across its augmentations); the chosen RandAugment,
   TrivialAugment and AugMix. Every augmented arm alters half of each batch; all arms get the
   same epochs, batches and optimizer steps.
4. **Yardsticks** on the test digits, every corruption seeded per image: the catalogue's own
   augmentations at intensities 0.1 ... 0.5 (in-distribution for the catalogue arms); the 19
   ImageNet-C corruptions (``imagecorruptions-imaug``) at severities 1-5, grouped by their
   nearest catalogue relative (``RELATIVES``, each justified): **no catalogue relative**, **a
   catalogue relative**, and the corruptions that barely hurt the tuning baselines (< 2 points
   of error on average: ``mild``), reported apart, as are the four validation corruptions that
   chose the candidates. mCE as Hendrycks & Dietterich (2019) with each split's mean baseline as
   the reference (baseline = 100 %).
5. **Statistics**: per (split, seed) pair, the chosen realism arm's mCE minus each other arm's;
   mean difference with a 95 % t interval, effect size dz, paired t-test and Wilcoxon
   signed-rank test, Holm-corrected within each yardstick's family of five comparisons. The
   primary family (the issue's target) is "no catalogue relative".
6. **Compare**: split 0, seed 0's baseline and its realism arm searched on the same test digits
   and compared with ``augment.compare`` (``OUT/compare/index.html``).

Writes ``OUT/results.json`` (versions, choices, every per-(split, seed) figure, the tests),
``OUT/results.md`` (the tables docs/study.md quotes), ``OUT/robustness.png``,
``OUT/robustness_imagenet_c.png`` and ``OUT/learning_curves.png``. Each (split, seed) job is
saved in ``OUT/jobs/`` as it finishes, so an interrupted study resumes where it stopped; the
figures depend only on the protocol and the seeds, not on ``--workers`` or on folders.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import hashlib
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402
from examples import digits, digits_model  # noqa: E402

SEVERITIES = [0.1, 0.2, 0.3, 0.4, 0.5]
IMAGENET_C_SEVERITIES = [1, 2, 3, 4, 5]
AUGMENTED_SHARE = 0.5  # of each training batch, for every augmented arm alike
TEST_SHARE, VALIDATION_SHARE = 0.25, 0.15
TUNING_SEED_BASE = 100  # tuning runs use seeds 100, 101, ...: never a main run's seed
MILD = 0.02  # a corruption degrading the tuning baselines by < 2 points (mean over severities) is "mild"
RELATIVE_FLOOR = MILD  # relative CE needs the reference degraded by >= 2 points (Sharpen's swung +-1000 % below)
VALIDATION_CORRUPTIONS = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]  # ImageNet-C's held-out four

# Each ImageNet-C corruption's nearest catalogue operation, and why (None: no operation of the
# catalogue makes anything like it). The digits are white ink on black.
RELATIVES = {
    "gaussian_noise": (None, "additive noise independent of the signal, also on the black background: the "
                             "catalogue's noise is multiplicative (zero on black) or dropout"),
    "shot_noise": ("MultiplicitiveNoise", "Poisson noise grows with the signal: on black it is ~0, on ink it "
                                          "scales the pixel, as multiplicative noise does"),
    "impulse_noise": ("PixelDropout", "salt-and-pepper: the pepper half is pixel dropout"),
    "speckle_noise": ("MultiplicitiveNoise", "x + x * n is multiplicative noise by definition"),
    "defocus_blur": ("GaussianBlur", "a disc kernel instead of a Gaussian one"),
    "glass_blur": ("GaussianBlur", "a Gaussian blur, local pixel swaps, a Gaussian blur again"),
    "motion_blur": ("MotionBlur", "the same operation"),
    "zoom_blur": (None, "the mean of centred zooms: a radial blur no catalogue operation makes"),
    "gaussian_blur": ("GaussianBlur", "the same operation"),
    "snow": ("Brighten", "a brighter background plus motion-blurred flakes (Brighten and MotionBlur)"),
    "frost": ("Decontrast", "lower contrast under a bright texture"),
    "fog": ("Decontrast", "lower contrast and a brighter background (Decontrast and Brighten)"),
    "brightness": ("Brighten", "the same operation"),
    "contrast": ("Decontrast", "the same operation"),
    "saturate": ("Saturate", "the same operation on colour images (on gray digits the catalogue's Saturate "
                             "changes nothing, ImageNet-C's tints the ink)"),
    "elastic_transform": ("ElasticTransform", "the same operation"),
    "pixelate": ("Downscale", "box-downscale and upscale: Downscale"),
    "jpeg_compression": (None, "8x8 block DCT quantization: nothing in the catalogue makes blocks or ringing"),
    "spatter": (None, "opaque blobs of mud or water occluding strokes: no catalogue operation draws shapes"),
}

# The candidates each family is tuned over, with the same budget each (see step 2 above).
CANDIDATES = {
    "augment.py": {"augment.py realism 0.5": ("realism", 0.5), "augment.py realism 0": ("realism", 0.0),
                   "augment.py realism -0.5": ("realism", -0.5)},
    "RandAugment": {"RandAugment m5": ("RandAugment", 5), "RandAugment m9": ("RandAugment", 9),
                    "RandAugment m13": ("RandAugment", 13)},
    "TrivialAugment": {"TrivialAugment": ("TrivialAugment", "standard"),
                       "TrivialAugmentWide": ("TrivialAugment", "wide")},
    "AugMix": {"AugMix s1": ("AugMix", 1), "AugMix s3": ("AugMix", 3)},
}
FLAT, SHUFFLED = "model-blind catalogue (flat limits)", "shuffled limits"


def split_indices(count: int, split: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) indices of split ``split``: the same on every machine."""
    order = np.random.default_rng(split).permutation(count)
    cut = int(round(count * (1 - TEST_SHARE)))
    rest, test = order[:cut], order[cut:]
    validation_count = int(round(len(rest) * VALIDATION_SHARE))
    return np.sort(rest[validation_count:]), np.sort(rest[:validation_count]), np.sort(test)


def corrupted_test_sets(images: np.ndarray, names: list[str]) -> dict[tuple[str, float], np.ndarray]:
    """Each held-out image under each augmentation and severity (a fixed, seeded corruption)."""
    return {(name, s): np.stack([augment.augment_image(image, name, s, augment.augmentation_seed(image, name, seed=k))
                                 for k, image in enumerate(images)])
            for name in names for s in SEVERITIES}


def imagenet_c_test_sets(images: np.ndarray, names: list[str]) -> dict[tuple[str, int], np.ndarray]:
    """Each held-out image under each ImageNet-C corruption and severity 1-5 (seeded per image)."""
    import inspect
    import zlib

    from imagecorruptions import corrupt, corruptions

    sets = {}
    for name in names:
        # Some corruptions draw from their own generator and take seed=; the others use numpy's global one.
        takes_seed = "seed" in inspect.signature(getattr(corruptions, name)).parameters
        for severity in IMAGENET_C_SEVERITIES:
            corrupted = []
            for k, image in enumerate(images):
                seed = zlib.crc32(f"imagenet-c|{k}|{name}|{severity}".encode())
                np.random.seed(seed)
                options = {"seed": seed} if takes_seed else {}
                corrupted.append(np.asarray(corrupt(image, corruption_name=name, severity=severity, **options),
                                            np.uint8))
            sets[name, severity] = np.stack(corrupted)
    return sets


def corruptions(images: np.ndarray, corrupted: dict, names: list[str]) -> tuple[list[str], list[str]]:
    """(names that change at least one held-out image at some severity, names that change none)."""
    changes = [name for name in names if any(not np.array_equal(corrupted[name, s], images) for s in SEVERITIES)]
    return changes, [name for name in names if name not in changes]


def errors_of(model, images: np.ndarray, labels: np.ndarray) -> float:
    predicted = digits_model.predict_probabilities(list(images), model).argmax(axis=1)
    return float(np.mean(predicted != labels))


def corruption_errors(result: dict, reference: dict, names: list[str], key: str = "corrupted",
                      severities: list = SEVERITIES) -> tuple[float, float]:
    """(mCE, relative mCE) of ``result`` against ``reference`` (Hendrycks & Dietterich 2019).

    Relative CE divides by the reference's degradation (corrupted minus clean error); a
    corruption that degrades the reference by less than RELATIVE_FLOOR on average over its
    severities has no relative CE and is left out of that mean (a near-zero denominator makes
    the ratio noise: Sharpen's swung from -660 % to +1080 % between seeds).
    """
    ce, rce = [], []
    for name in names:
        errors = [result[key][f"{name}@{s}"] for s in severities]
        base = [reference[key][f"{name}@{s}"] for s in severities]
        ce.append(sum(errors) / sum(base) if sum(base) > 0 else float("nan"))  # no reference error: no CE
        degradation = sum(b - reference["clean"] for b in base)
        if degradation >= RELATIVE_FLOOR * len(severities):
            rce.append(sum(e - result["clean"] for e in errors) / degradation)
    return (float(np.nanmean(ce)) if not np.all(np.isnan(ce)) else float("nan"),
            float(np.mean(rce)) if rce else float("nan"))


def below_floor(reference: dict, names: list[str], key: str, severities: list) -> list[str]:
    """The corruptions that barely degrade the reference (< RELATIVE_FLOOR on average)."""
    return [name for name in names if sum(reference[key][f"{name}@{s}"] - reference["clean"]
                                          for s in severities) < RELATIVE_FLOOR * len(severities)]


def half_of_each_batch(augment_one, before=None):
    """augment_fn for train_cnn: ``augment_one(image)`` on half of each batch (the same images
    chosen for every method); ``before(rng)`` runs once per batch after the choice."""

    def apply(batch: np.ndarray, rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
        out = batch.copy()
        chosen = rng.random(len(batch)) < AUGMENTED_SHARE
        if before is not None:
            before(rng)
        for k in np.flatnonzero(chosen):
            out[k] = augment_one(batch[k])
        return out

    return apply


def random_augment(kind: str, setting=None):
    """augment_fn for train_cnn: a torchvision policy on half of each batch (uint8 tensors).

    RandAugment(magnitude=setting); TrivialAugment "wide" (torchvision's TrivialAugmentWide) or
    "standard" (RandAugment's space, one operation per image, a magnitude bin drawn uniformly
    from its 31: the TrivialAugment paper's standard space); AugMix(severity=setting) with the
    paper's operation set (``all_ops=False``: no brightness, contrast, colour or sharpness,
    which overlap ImageNet-C).
    """
    import torch
    from torchvision.transforms import v2

    if kind == "TrivialAugment" and setting == "standard":
        bins = [v2.RandAugment(num_ops=1, magnitude=m) for m in range(31)]

        def policy(tensor):
            return bins[int(torch.randint(31, ()))](tensor)
    elif kind == "TrivialAugment":
        policy = v2.TrivialAugmentWide()
    elif kind == "RandAugment":
        policy = v2.RandAugment(num_ops=2, magnitude=setting)
    else:
        policy = v2.AugMix(severity=setting, all_ops=False)

    def one(image: np.ndarray) -> np.ndarray:
        return policy(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)).permute(1, 2, 0).numpy()

    return half_of_each_batch(one, before=lambda rng: torch.manual_seed(int(rng.integers(2**31))))


def mean_drawn_intensity(policy: augment.SamplingPolicy, draws: int = 20000) -> float:
    """The mean intensity of the steps ``policy`` draws (a fixed generator: the same every run)."""
    rng = np.random.default_rng(0)
    return float(np.mean([t for _ in range(draws) for _, t in policy.sample(rng)[0]]))


def flat_policy(policy: augment.SamplingPolicy) -> augment.SamplingPolicy:
    """The model-blind control: ``policy``'s operations, weights and stacking, every positive limit
    replaced by one flat limit whose mean drawn intensity equals ``policy``'s (intensities are
    drawn from 1..100 % of a limit, mean 50.5 %, whatever the operation)."""
    flat = min(1.0, mean_drawn_intensity(policy) / 0.505)
    return augment.SamplingPolicy({name: flat if limit > 0 else 0.0 for name, limit in policy.limits.items()},
                                  policy.weights, policy.fewest, policy.most, None, "model-blind control")


def shuffled_policy(policy: augment.SamplingPolicy, rng: np.random.Generator) -> augment.SamplingPolicy:
    """The shuffled control: ``policy``'s positive limits permuted across its augmentations (the same
    operations, the same distribution of strengths, the mapping to operations destroyed)."""
    positive = [name for name, limit in policy.limits.items() if limit > 0]
    permuted = dict(zip(positive, rng.permutation([policy.limits[name] for name in positive]).tolist()))
    return augment.SamplingPolicy({name: permuted.get(name, 0.0) for name in policy.limits}, policy.weights,
                                  policy.fewest, policy.most, None, "shuffled-limits control")


def spread(values) -> dict:
    """Mean, sample standard deviation (ddof 1) and 95 % confidence interval (Student's t)."""
    from scipy import stats

    values = np.asarray(values, float)
    values = values[~np.isnan(values)]  # (a unit whose relative mCE is undefined is left out, and counted)
    if not len(values):
        return {"mean": float("nan"), "sd": float("nan"), "ci": [float("nan"), float("nan")], "n": 0}
    mean = float(values.mean())
    if len(values) < 2:
        return {"mean": mean, "sd": float("nan"), "ci": [float("nan"), float("nan")], "n": len(values)}
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(values) - 1) * sd / np.sqrt(len(values)))
    return {"mean": mean, "sd": sd, "ci": [mean - half, mean + half], "n": len(values)}


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    order = np.argsort(p_values, kind="stable")
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_test(ours: np.ndarray, theirs: np.ndarray, splits: list[int] | None = None) -> dict:
    """Ours minus theirs over paired units: mean difference [95 % t interval], dz, wins, p-values."""
    from scipy import stats

    difference = np.asarray(ours, float) - np.asarray(theirs, float)
    result = {"difference": spread(difference), "wins": int(np.sum(difference < 0)), "n": len(difference)}
    if splits is not None:  # the units share each split's test digits: the mean difference per split too
        result["by_split"] = {int(k): float(difference[np.asarray(splits) == k].mean()) for k in sorted(set(splits))}
    sd = difference.std(ddof=1) if len(difference) > 1 else float("nan")
    result["dz"] = float(difference.mean() / sd) if sd > 0 else float("nan")
    result["p_t"] = float(stats.ttest_rel(ours, theirs).pvalue) if sd > 0 else 1.0
    result["p_wilcoxon"] = float(stats.wilcoxon(difference).pvalue) if np.any(difference != 0) else 1.0
    return result


def versions() -> dict:
    """What the figures were made with: they move with these (an OpenCV patch release moved them once)."""
    from importlib import metadata

    packages = ["numpy", "torch", "torchvision", "albumentations", "albucore", "opencv-python-headless",
                "opencv-python", "imagecorruptions-imaug", "scikit-image", "scikit-learn", "scipy"]
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return {"python": platform.python_version(), "augment.py": augment.__version__, **found}


# ---- one (split, seed) job: train, search, train every arm, evaluate; run in worker processes ----

@functools.lru_cache(maxsize=2)
def evaluation_sets(split: int, quick: bool, names: tuple, imagenet_names: tuple, validation_names: tuple) -> dict:
    """The split's indices and its corrupted test and validation sets (made once per process and split)."""
    images, _ = digits_model.load_digits_rgb()
    train, validation, test = split_indices(len(images), split)
    if quick:
        train, validation, test = train[:120], validation[:40], test[:60]
    return {"train": train, "validation": validation, "test": test,
            "corrupted": corrupted_test_sets(images[test], list(names)),
            "imagenet_c": imagenet_c_test_sets(images[test], list(imagenet_names)),
            "validation_c": imagenet_c_test_sets(images[validation], list(validation_names))}


def evaluate(model, sets: dict, with_validation: bool) -> dict:
    images, labels = digits_model.load_digits_rgb()
    test, validation = labels[sets["test"]], labels[sets["validation"]]
    result = {"clean": errors_of(model, images[sets["test"]], test),
              "corrupted": {f"{n}@{s}": errors_of(model, x, test) for (n, s), x in sets["corrupted"].items()},
              "imagenet_c": {f"{n}@{s}": errors_of(model, x, test) for (n, s), x in sets["imagenet_c"].items()}}
    if with_validation:
        result["validation"] = {"clean": errors_of(model, images[sets["validation"]], validation), "imagenet_c": {
            f"{n}@{s}": errors_of(model, x, validation) for (n, s), x in sets["validation_c"].items()}}
    return result


def job_path(spec: dict) -> Path:
    return Path(spec["out"]) / "jobs" / f"{spec['phase']}-split{spec['split']}-seed{spec['seed']}.json"


def run_job(spec: dict) -> dict:
    """One (split, seed) job, or its saved result when the same job already ran (a resumed study)."""
    import torch

    key = hashlib.sha256(json.dumps({k: v for k, v in spec.items() if k != "out"}, sort_keys=True).encode()
                         ).hexdigest()[:16]
    path = job_path(spec)
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per job: the same figures whatever --workers is
    try:
        result = {"key": key, **{k: spec[k] for k in ("phase", "split", "seed")}, "versions": versions(),
                  **train_every_arm(spec)}
    finally:
        torch.set_num_threads(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".partial")
    temporary.write_text(json.dumps(result))
    os.replace(temporary, path)
    return result


def train_every_arm(spec: dict) -> dict:
    import torch

    images, labels = digits_model.load_digits_rgb()
    sets = evaluation_sets(spec["split"], spec["quick"], tuple(spec["augmentations"]), tuple(spec["imagenet_c"]),
                           tuple(spec["validation_corruptions"]))
    train, test, seed, out = sets["train"], sets["test"], spec["seed"], Path(spec["out"])
    tuning = spec["phase"] == "tune"
    runs, curves, seconds, policies = {}, {}, {}, {}

    def train_and_evaluate(method: str, augment_fn=None):
        curve: list[float] = []

        def on_epoch(epoch, model):
            curve.append(1 - errors_of(model, images[test], labels[test]))

        began = time.perf_counter()
        model = digits_model.train_cnn(images[train], labels[train], epochs=spec["epochs"], seed=seed,
                                       augment_fn=augment_fn, on_epoch=None if tuning else on_epoch)
        seconds[method] = time.perf_counter() - began
        runs[method] = evaluate(model, sets, with_validation=tuning)
        curves[method] = curve
        if spec.get("keep_models"):
            (out / "jobs" / "models").mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), out / "jobs" / "models" / f"{method.replace(' ', '-')}.pt")
        return model

    baseline = train_and_evaluate("baseline")
    files, truth = digits.write_pngs(images, labels, train[:spec["search_images"]], out / f"train-split{spec['split']}")
    augmenter = augment.ImageAugmenter(lambda batch: [
        int(k) for k in digits_model.predict_probabilities(batch, baseline).argmax(axis=1)],
        batch_size=256, seed=seed, progress=False,
        model_id=f"baseline split {spec['split']} seed {seed}, {spec['epochs']} epochs")
    augmenter.search_randomization_boundaries(
        files, truth, 0.05, out / "analyses" / f"{spec['phase']}-split{spec['split']}-seed{seed}.json",
        strategy="adaptive", num_workers=0)
    for method, (kind, setting) in spec["arms"].items():
        if kind in ("realism", "flat", "shuffled"):
            policy = augmenter.transform(setting, seed=seed).policy
            if kind == "flat":
                policy = flat_policy(policy)
            elif kind == "shuffled":
                policy = shuffled_policy(policy, np.random.default_rng([spec["split"], seed]))
            policies[method] = policy.to_json()
            train_and_evaluate(method, half_of_each_batch(augment.RealismTransform(policy, seed=seed)))
        else:
            train_and_evaluate(method, random_augment(kind, setting))
    return {"runs": runs, "curves": curves, "seconds": seconds, "policies": policies}


def run_jobs(specs: list[dict], workers: int, started: float) -> list[dict]:
    """Every job, in worker processes when ``workers`` > 1; results in the order of ``specs``."""
    def report(spec: dict) -> None:
        print(f"  {spec['phase']} split {spec['split']} seed {spec['seed']}: done "
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    if workers <= 1:
        results = []
        for spec in specs:
            results.append(run_job(spec))
            report(spec)
        return results
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no torch state inherited by fork
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(run_job, spec): k for k, spec in enumerate(specs)}
        results = [None] * len(specs)
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            report(specs[futures[future]])
    return results


# ---- the protocol: tune on validation, run the chosen arms, test ----

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/robustness")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10, help="main runs per split")
    parser.add_argument("--tuning-seeds", type=int, default=2, help="tuning runs per split")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--search-images", type=int, default=300)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (the figures do not depend on it)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not the figures")
    args = parser.parse_args(argv)
    if args.quick:
        args.splits, args.seeds, args.tuning_seeds, args.epochs, args.search_images = 2, 2, 1, 2, 24
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    images, _ = digits_model.load_digits_rgb()
    from imagecorruptions import get_corruption_names

    names = augment.ALL_AUGMENTATIONS if not args.quick else ["Brighten", "GaussianBlur", "SafeRotate"]
    test0 = split_indices(len(images), 0)[2]
    names, unchanged = corruptions(images[test0], corrupted_test_sets(images[test0], names), names)
    if unchanged:
        print(f"left out of the catalogue yardstick (they change no test digit): {', '.join(unchanged)}")
    imagenet_names = (get_corruption_names("all") if not args.quick
                      else ["gaussian_noise", "zoom_blur", "motion_blur", "spatter"])
    validation_names = VALIDATION_CORRUPTIONS if not args.quick else ["speckle_noise", "gaussian_blur"]
    common = {"out": str(out), "epochs": args.epochs, "search_images": args.search_images, "quick": args.quick,
              "augmentations": names, "imagenet_c": imagenet_names, "validation_corruptions": validation_names}
    candidates = {method: arm for family in CANDIDATES.values() for method, arm in family.items()}

    for split in range(args.splits):  # the search's digits, written before two workers could race to write them
        train = split_indices(len(images), split)[0]
        digits.write_pngs(images, digits_model.load_digits_rgb()[1], (train[:120] if args.quick else train)[
            :args.search_images], out / f"train-split{split}")
    print(f"tuning: {args.splits} splits x {args.tuning_seeds} seeds x {len(candidates)} candidates")
    tuning = run_jobs([{**common, "phase": "tune", "split": split, "seed": TUNING_SEED_BASE + k, "arms": candidates}
                       for split in range(args.splits) for k in range(args.tuning_seeds)], args.workers, started)
    validation = validation_scores(tuning, candidates)
    choices = {family: min(members, key=lambda m: (validation[m]["ce"], -validation[m]["accuracy"], m))
               for family, members in CANDIDATES.items()}
    realism = candidates[choices["augment.py"]][1]
    print("chosen on validation: " + ", ".join(choices.values()))
    arms = {choices["augment.py"]: ("realism", realism), FLAT: ("flat", realism), SHUFFLED: ("shuffled", realism),
            **{choices[f]: candidates[choices[f]] for f in ("RandAugment", "TrivialAugment", "AugMix")}}
    main_runs = run_jobs([{**common, "phase": "main", "split": split, "seed": seed, "arms": arms,
                           "keep_models": split == 0 and seed == 0}
                          for split in range(args.splits) for seed in range(args.seeds)], args.workers, started)

    results, groups = results_document(args, tuning, main_runs, choices, validation, names, unchanged,
                                       imagenet_names, validation_names, candidates, started)
    write_results(results, groups, main_runs, out, names, imagenet_names, args.search_images, started)
    return 0


def results_document(args, tuning: list[dict], main_runs: list[dict], choices: dict, validation: dict,
                     names: list[str], unchanged: list[str], imagenet_names: list[str], validation_names: list[str],
                     candidates: dict, started: float) -> tuple[dict, dict]:
    """results.json's content (without the compare page) and the yardstick groups."""
    mild = below_floor(mean_runs([job["runs"]["baseline"] for job in tuning]), imagenet_names, "imagenet_c",
                       IMAGENET_C_SEVERITIES)
    groups = yardsticks(names, imagenet_names, mild)
    ours = choices["augment.py"]
    summary = summarize(main_runs, groups, ours)
    return {
        "versions": versions(),  # of this aggregation; each job records its own (jobs of older runs did not)
        "job_versions": sorted({json.dumps(job["versions"], sort_keys=True) for job in tuning + main_runs
                                if "versions" in job}),
        "protocol": {k: v for k, v in vars(args).items() if k not in ("out", "workers")}
        | {"test_share": TEST_SHARE, "validation_share": VALIDATION_SHARE, "augmented_share": AUGMENTED_SHARE,
           "mild_below": MILD, "validation_corruptions": validation_names, "candidates": candidates},
        "choices": choices, "validation": validation, "arms": list(summary["rows_by_method"]),
        "relatives": {n: RELATIVES[n][0] for n in imagenet_names}, "mild": mild,
        "groups": {g: spec[1] for g, spec in groups.items()}, "left_out": unchanged,
        "rows": summary["rows"], "tests": summary["tests"], "target": target(summary, ours),
        "tuning_rows": summarize(tuning, groups, None)["rows"],
        "strength": strength(main_runs, unchanged, args.search_images),
        "units": [{k: job[k] for k in ("split", "seed", "runs", "seconds", "policies")} for job in main_runs],
        "tuning_units": [{k: job[k] for k in ("split", "seed", "runs", "seconds")} for job in tuning],
        "curves": {m: [job["curves"][m] for job in main_runs] for m in main_runs[0]["curves"]},
        "wall_seconds": time.perf_counter() - started}, groups


def write_results(results: dict, groups: dict, main_runs: list[dict], out: Path, names: list[str],
                  imagenet_names: list[str], search_images: int, started: float) -> None:
    """results.md, the plots, the compare page and results.json; the tables printed."""
    ours = results["choices"]["augment.py"]
    lines = tables(results, groups)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(main_runs, names, imagenet_names, out)
    comparison = compare_page(out, ours, names, search_images)
    results["compare"] = comparison.to_json()
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n" + "\n".join(lines))
    print(f"\nsplit 0, seed 0: baseline against {ours} on the same test digits (paired):\n" + comparison.format())
    print(f"\n{out / 'results.md'}, {out / 'robustness.png'}, {out / 'robustness_imagenet_c.png'}, "
          f"{out / 'learning_curves.png'}, {comparison.page} ({time.perf_counter() - started:.0f} s)")


def strength(main_runs: list[dict], unchanged: list[str], count: int) -> dict:
    """Per catalogue arm: the mean drawn intensity (all steps; steps of operations that change a digit)
    over the runs, and the mean absolute pixel change it makes on split 0's first training digits."""
    images, _ = digits_model.load_digits_rgb()
    training = images[split_indices(len(images), 0)[0][:count]]
    result = {}
    for arm in main_runs[0]["policies"]:
        drawn, effective = [], []
        for job in main_runs:
            policy, rng = augment.SamplingPolicy.from_json(job["policies"][arm]), np.random.default_rng(0)
            steps = [step for _ in range(2000) for step in policy.sample(rng)[0]]
            drawn.append(np.mean([t for _, t in steps]))
            effective.append(np.mean([t for name, t in steps if name not in unchanged]))
        first = next(j for j in main_runs if (j["split"], j["seed"]) == (0, 0))
        transform = augment.RealismTransform(augment.SamplingPolicy.from_json(first["policies"][arm]), seed=0)
        change = np.mean([np.abs(transform(d).astype(int) - d).mean() for d in training])
        result[arm] = {"all": float(np.mean(drawn)), "effective": float(np.mean(effective)), "pixels": float(change)}
    return result


def mean_runs(runs: list[dict]) -> dict:
    """The mean of several runs' error rates, key by key (the mCE reference)."""
    return {"clean": float(np.mean([r["clean"] for r in runs]))} | {
        kind: {key: float(np.mean([r[kind][key] for r in runs])) for key in runs[0][kind]}
        for kind in ("corrupted", "imagenet_c")}


def validation_scores(tuning: list[dict], candidates: dict) -> dict:
    """Per candidate: mean CE on the validation digits under the validation corruptions (each job's
    baseline = 1) and mean validation accuracy, over the tuning jobs."""
    scores = {}
    for method in candidates:
        ce, accuracy = [], []
        for job in tuning:
            mine, base = job["runs"][method]["validation"], job["runs"]["baseline"]["validation"]
            ce.append(np.mean([sum(v for k, v in mine["imagenet_c"].items() if k.startswith(f"{n}@"))
                               / max(1e-9, sum(v for k, v in base["imagenet_c"].items() if k.startswith(f"{n}@")))
                               for n in {key.split("@")[0] for key in base["imagenet_c"]}]))
            accuracy.append(1 - mine["clean"])
        scores[method] = {"ce": float(np.mean(ce)), "se": float(np.std(ce, ddof=1) / np.sqrt(len(ce))) if len(ce) > 1
                          else float("nan"), "accuracy": float(np.mean(accuracy)), "n": len(tuning)}
    return scores


def yardsticks(names: list[str], imagenet_names: list[str], mild: list[str]) -> dict:
    """group -> (result key, corruption names, severities); empty groups left out.

    The four validation corruptions chose each family's candidate (on other digits): they are a
    group of their own, never part of a headline group."""
    common = [n for n in imagenet_names if n not in VALIDATION_CORRUPTIONS]
    groups = {"no catalogue relative": [n for n in common if RELATIVES[n][0] is None and n not in mild],
              "catalogue relative": [n for n in common if RELATIVES[n][0] is not None and n not in mild],
              "mild": [n for n in common if n in mild], "ImageNet-C 15": common,
              "validation corruptions": [n for n in imagenet_names if n in VALIDATION_CORRUPTIONS]}
    return {g: ("imagenet_c", members, IMAGENET_C_SEVERITIES) for g, members in groups.items() if members} | {
        "catalogue": ("corrupted", names, SEVERITIES)}


def summarize(jobs: list[dict], groups: dict, ours: str | None) -> dict:
    """Per method: clean accuracy, and per group mCE and relative mCE over the (split, seed) units,
    each split's mean baseline the reference; with ``ours``: the paired tests against every other arm."""
    references = {split: mean_runs([j["runs"]["baseline"] for j in jobs if j["split"] == split])
                  for split in {j["split"] for j in jobs}}
    methods = list(jobs[0]["runs"])
    scores = {m: {g: np.array([corruption_errors(j["runs"][m], references[j["split"]], members, kind, severities)
                               for j in jobs]) for g, (kind, members, severities) in groups.items()}
              for m in methods}
    rows, by_method = [], {}
    for m in methods:
        row = {"method": m, "clean_accuracy": spread([1 - j["runs"][m]["clean"] for j in jobs])}
        for g in groups:
            row[f"{g} mCE"] = spread(scores[m][g][:, 0])
            row[f"{g} relative mCE"] = spread(scores[m][g][:, 1])
        rows.append(row)
        by_method[m] = row
    tests = []
    if ours is not None:
        others = [m for m in methods if m not in ("baseline", ours)]
        families = {g: [(scores[ours][g][:, 0], scores[o][g][:, 0]) for o in others] for g in groups}
        families["clean error"] = [([j["runs"][ours]["clean"] for j in jobs], [j["runs"][o]["clean"] for j in jobs])
                                   for o in others]
        for family, pairs in families.items():
            found = [paired_test(np.asarray(a), np.asarray(b), [j["split"] for j in jobs]) for a, b in pairs]
            for other, test, adjusted in zip(others, found, holm([t["p_t"] for t in found])):
                tests.append({"yardstick": family, "against": other, **test, "p_holm": adjusted})
    return {"rows": rows, "rows_by_method": by_method, "tests": tests}


def target(summary: dict, ours: str) -> dict:
    """The issue's target: ours beats the model-blind control and each tuned torchvision policy on
    the corruptions with no catalogue relative, paired p < 0.05 after Holm's correction."""
    primary = [t for t in summary["tests"] if t["yardstick"] == "no catalogue relative" and t["against"] != SHUFFLED]
    met = bool(primary) and all(t["difference"]["mean"] < 0 and t["p_holm"] < 0.05 for t in primary)
    return {"arm": ours, "met": met, "against": {t["against"]: {"difference": t["difference"]["mean"],
                                                                "p_holm": t["p_holm"]} for t in primary}}


def cell(stat: dict, percent: bool = True) -> str:
    scale, unit, decimals = (100, " %", 1) if percent else (1, "", 3)
    if np.isnan(stat["mean"]):
        return "n/a"
    if np.isnan(stat["sd"]):
        return f"{scale * stat['mean']:.{decimals}f}{unit}"
    low, high = (scale * v for v in stat["ci"])
    return f"{scale * stat['mean']:.{decimals}f}{unit} [{low:.{decimals}f}, {high:.{decimals}f}]"


def tables(results: dict, groups: dict) -> list[str]:
    """The Markdown the README quotes."""
    group_names, rows = list(groups), results["rows"]
    n = rows[0]["clean_accuracy"]["n"]
    p = results["protocol"]
    lines = [f"# Retraining study: {p['splits']} splits x {p['seeds']} seeds = {n} paired runs per arm",
             "", "versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v), "",
             "## Chosen on validation digits (the tuning runs' test figures, further down, played no part)", "",
             "| candidate | validation CE (validation corruptions), mean ± standard error | validation accuracy "
             "| chosen |", "|---|---|---|---|"]
    chosen = set(results["choices"].values())
    lines += [f"| {m} | {100 * v['ce']:.1f} % ± {100 * v['se']:.1f} | {v['accuracy']:.3f} | "
              f"{'yes' if m in chosen else ''} |" for m, v in results["validation"].items()]
    lines += ["", f"## Test: mCE (split's baseline = 100 %), mean [95 % CI] over {n} (split, seed) runs", "",
              "| arm | clean accuracy | " + " | ".join(f"{g} mCE" for g in group_names) + " |",
              "|---" * (len(group_names) + 2) + "|"]
    lines += [f"| {r['method']} | {cell(r['clean_accuracy'], False)} | "
              + " | ".join(cell(r[f"{g} mCE"]) for g in group_names) + " |" for r in rows]
    ours = results["choices"]["augment.py"]
    lines += ["", f"## Paired tests: {ours} minus each arm (negative: {ours} better)", "",
              "mCE difference in points [95 % CI over the paired runs], effect size dz, runs where ours is lower, "
              "the mean difference in each split (the runs of a split share its test digits), paired t-test p, "
              "Wilcoxon signed-rank p (not adjusted), and the t-test p Holm-adjusted within each yardstick's family "
              "of five comparisons. The primary family is 'no catalogue relative'; the others are exploratory.", "",
              "| yardstick | against | difference | dz | ours lower | per split | p (t) | p (Wilcoxon) | p (Holm) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in results["tests"]:
        d, primary = t["difference"], t["yardstick"] == "no catalogue relative"
        splits = ", ".join(f"{100 * v:+.1f}" for v in t.get("by_split", {}).values())
        lines.append(f"| {'**' + t['yardstick'] + '**' if primary else t['yardstick']} | {t['against']} | "
                     f"{100 * d['mean']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}] | {t['dz']:+.2f} | "
                     f"{t['wins']} of {t['n']} | {splits} | {t['p_t']:.3g} | {t['p_wilcoxon']:.3g} | "
                     f"{t['p_holm']:.3g} |")
    verdict = "met" if results["target"]["met"] else "NOT met"
    primary = ", ".join(results["groups"].get("no catalogue relative", [])) or "none"
    lines += ["", f"target (registered before the run): ours beats the model-blind control and each tuned torchvision "
                  f"policy on 'no catalogue relative' ({primary}) with Holm p < 0.05 (the shuffled control is in the "
                  f"Holm family, not in the target): {verdict}"]
    lines += ["", "## The catalogue arms' strength", "", "mean intensity of the drawn steps (all of them; only those "
              "of operations that change a digit), over the paired runs; mean absolute pixel change of an augmented "
              "training digit (split 0, seed 0, 300 digits)", "",
              "| arm | mean drawn intensity | on operations that change a digit | mean pixel change |",
              "|---|---|---|---|"]
    lines += [f"| {arm} | {v['all']:.3f} | {v['effective']:.3f} | {v['pixels']:.1f} |"
              for arm, v in results["strength"].items()]
    lines += ["", "## Yardsticks", "", "| corruption | nearest catalogue relative | why | group |", "|---|---|---|---|"]
    for name, relative in results["relatives"].items():
        group = next(g for g, members in results["groups"].items() if name in members and g != "ImageNet-C 15")
        lines.append(f"| {name} | {relative or 'none'} | {RELATIVES[name][1]} | {group} |")
    lines += ["", f"mild: degrade the tuning baselines by < {100 * MILD:g} points of error on average over "
                  f"severities (decided from the tuning baselines' errors on the test digits, no other arm's): "
                  f"{', '.join(results['mild']) or 'none'}. The 'catalogue' yardstick is in-distribution for the "
                  f"catalogue arms, which train on those operations."]
    lines += ["", "## Secondary: every tuning candidate on the test digits "
                  f"({results['tuning_rows'][0]['clean_accuracy']['n']} tuning runs each, not the headline)", "",
              "| candidate | clean accuracy | " + " | ".join(f"{g} mCE" for g in group_names) + " |",
              "|---" * (len(group_names) + 2) + "|"]
    lines += [f"| {r['method']} | {cell(r['clean_accuracy'], False)} | "
              + " | ".join(cell(r[f"{g} mCE"]) for g in group_names) + " |" for r in results["tuning_rows"]]
    lines += ["", "## Secondary: relative mCE (corruptions degrading the split's baseline by < 2 points left out)",
              "", "| arm | " + " | ".join(f"{g} relative mCE" for g in group_names) + " |",
              "|---" * (len(group_names) + 1) + "|"]
    lines += [f"| {r['method']} | " + " | ".join(cell(r[f"{g} relative mCE"]) for g in group_names) + " |"
              for r in rows]
    seconds = {m: np.mean([u["seconds"][m] for u in results["units"]]) for m in results["units"][0]["seconds"]}
    lines += ["", f"budget per model: {p['epochs']} epochs of batches of 64, half of each batch augmented; training "
                  "seconds per model (one thread): " + ", ".join(f"{m} {s:.0f}" for m, s in seconds.items()),
              f"wall time of the study: {results['wall_seconds'] / 60:.0f} minutes"]
    return lines


def error_by_severity(jobs: list[dict], kind: str, names: list[str], severities: list) -> dict[str, list[float]]:
    """Per method: [clean error, mean error over corruptions and runs at each severity]."""
    return {m: [float(np.mean([j["runs"][m]["clean"] for j in jobs])),
                *(float(np.mean([j["runs"][m][kind][f"{n}@{s}"] for j in jobs for n in names])) for s in severities)]
            for m in jobs[0]["runs"]}


def plot(jobs: list[dict], names: list[str], imagenet_names: list[str], out: Path) -> None:
    for file, kind, kind_names, severities, xlabel, title in (
            ("robustness.png", "corrupted", names, SEVERITIES, "corruption intensity (every catalogue augmentation)",
             "Test digits: error against corruption intensity"),
            ("robustness_imagenet_c.png", "imagenet_c", imagenet_names, IMAGENET_C_SEVERITIES,
             f"ImageNet-C severity ({len(imagenet_names)} corruptions)", "Test digits: error under ImageNet-C")):
        errors = error_by_severity(jobs, kind, kind_names, severities)
        line_plot(out / file, {m: ([0, *severities], row) for m, row in errors.items()}, xlabel,
                  "test error, mean over corruptions and runs", title)
    learning = {m: (np.linspace(0, 1, len(mean) + 1)[1:], mean) for m in jobs[0]["curves"]
                if len(mean := np.mean(np.array([j["curves"][m] for j in jobs]), axis=0))}
    line_plot(out / "learning_curves.png", learning, "share of the training budget (optimizer steps)",
              "clean test accuracy", "Learning curves (mean over runs)")


def line_plot(path: Path, series: dict, xlabel: str, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for label, (xs, ys) in series.items():
        axis.plot(xs, ys, marker="o" if len(xs) < 10 else None, label=label)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def compare_page(out: Path, ours: str, names: list[str], count: int) -> augment.Comparison:
    """Split 0, seed 0: its baseline and ``ours`` searched on the same test digits, compared."""
    import torch

    images, labels = digits_model.load_digits_rgb()
    test = split_indices(len(images), 0)[2][:count]
    files, truth = digits.write_pngs(images, labels, test, out / "held-out")
    paths = {}
    for method in ("baseline", ours):
        model = digits_model.build_cnn()
        model.load_state_dict(torch.load(out / "jobs" / "models" / f"{method.replace(' ', '-')}.pt"))
        model.eval()
        augmenter = augment.ImageAugmenter(lambda batch, model=model: [
            int(k) for k in digits_model.predict_probabilities(batch, model).argmax(axis=1)],
            augmentations=names, batch_size=256, seed=0, progress=False, model_id=f"{method}, split 0, seed 0")
        paths[method] = out / f"held-out-analysis-{method.replace(' ', '-')}.json"
        augmenter.search_randomization_boundaries(files, truth, 0.05, paths[method], strategy="adaptive",
                                                  num_workers=0)
    return augment.compare(paths, html_dir=out / "compare")


if __name__ == "__main__":
    sys.exit(main())
