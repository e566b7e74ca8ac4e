"""Search speed, model calls, memory and Dask, each printed next to its target.

    python benchmarks/bench_search.py            # about 8 minutes on 2 cores
    python benchmarks/bench_search.py --quick    # smaller sizes, a smoke run

Models: the bundled digits CNN at 32x32 (a small model) and torchvision's ResNet-18 with
random weights at 112x112 (a model of realistic cost). Figures:

1. catalogue: each augmentation's cost per augmented image over a 20-step sweep at 224 and 3000 px,
   (what the search does per image and augmentation), against 10x the catalogue median;
2. overhead ratio: grid-search wall time / (model alone on the same images, batched +
   augmentations alone), rendering inline and with worker processes; target <= 1.15;
3. adaptive search vs a seed-style loop (a temporary PNG per augmented image, one predict
   per file, the full grid): time to every first failure; target >= 10x (small CNN),
   >= 3x (ResNet-18); with the share of first failures that agree;
4. adaptive / grid model calls at step 0.05; target <= 0.35;
5. peak resident memory of a search over 200 and over 2,000 image files; growth <= 1.5x;
6. Dask LocalCluster (2 worker processes, 1 thread each) / local single process, wall time
   of a ResNet-18 search (no target: a measured figure);
7. the guided strategy with default settings (what strategy="auto" runs from 2,000 pairs): model
   calls per (image, augmentation) pair for 200 digits x 24 augmentations at step 0.05, target
   <= 3.0, with the share of first failures equal to a full grid search's, target >= 99 %, and
   adaptive and guided search / the model alone, target <= 1.3; the same for ResNet-18 photos
   (no target);
8. analyses of many images (--only rows; --rows-images N sets the largest, default 100,000): an
   adaptive search of N tiny images x 24 augmentations with a trivial model (the model is not the
   cost), in a subprocess: peak memory above the process's baseline (target < 1 GiB), seconds per
   checkpoint when the analysis holds 10k and N images (target: proportional to the new rows, not
   to the images searched), then load_analysis + every summary, and the report, in a fresh process
   (target < 5 s each);
9. --only dask-scale (--dask-images N, default 20,000; --dask-rows auto|memory|released): the same
   search on a LocalCluster of 2 worker processes: throughput and the driver's peak memory above its
   baseline (no target: measured), with the rows released to the shards (from 250,000 pairs: auto) or not.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from tiny import tiny_images, trivial_predict  # noqa: E402

import augment  # noqa: E402
from examples import digits_model, resnet  # noqa: E402

ROWS: list[tuple[str, str, str, str]] = []


def report(figure: str, measured: float, target: str, met: bool | None, unit: str = "") -> None:
    verdict = "-" if met is None else ("met" if met else "NOT met")
    ROWS.append((figure, f"{measured:.3g}{unit}", target, verdict))
    print(f"  {figure:<58} {measured:>9.3g}{unit:<2} target {target:<8} {verdict}", flush=True)


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def digits(count: int) -> list[np.ndarray]:
    images, _ = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    return [images[k] for k in np.resize(train, count)]


def photo_crops(count: int, size: int) -> list[np.ndarray]:
    """``count`` different photos: seeded crops (60-100 % of the side) of scikit-image's pictures."""
    import cv2
    from skimage import data

    pictures = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    rng, crops = np.random.default_rng(7), []
    for k in range(count):
        picture = pictures[k % len(pictures)]
        side = int(min(picture.shape[:2]) * rng.uniform(0.6, 1.0))
        top, left = (int(rng.integers(0, dim - side + 1)) for dim in picture.shape[:2])
        crops.append(cv2.resize(picture[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA))
    return crops


def photos(count: int, size: int) -> list[np.ndarray]:
    import cv2
    from skimage import data

    pictures = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    return [cv2.resize(pictures[k % len(pictures)], (size, size), interpolation=cv2.INTER_AREA)
            for k in range(count)]


GRID = [k / 20 for k in range(21)]  # step 0.05


def render(image: np.ndarray, name: str, intensities, seed: int) -> list[np.ndarray]:
    """One sweep, as the search renders it: the same seed at every intensity."""
    return [augment.augment_image(image, name, t, seed) for t in intensities]


def render_all(images: list[np.ndarray], grid: list[float]) -> list[np.ndarray]:
    return [out for k, image in enumerate(images) for name in augment.ALL_AUGMENTATIONS
            for out in render(image, name, grid[1:], augment.augmentation_seed(image, name))]


def predict_all(predict, images: list[np.ndarray], batch: int) -> None:
    for start in range(0, len(images), batch):
        predict(images[start:start + batch])


# -- 1. catalogue -------------------------------------------------------------------


def sweep_costs(image: np.ndarray, steps: int, repeats: int, names: list[str]) -> dict[str, float]:
    """Seconds per augmented image over a sweep of ``steps`` intensities, best of ``repeats``;
    each repeat on new pixels, so per-image caches (segments, elastic fields) start cold."""
    grid = [k / steps for k in range(1, steps + 1)]
    cost = {}
    for name in names:
        runs = []
        for repeat in range(repeats):
            fresh = image.copy()
            fresh[0, 0, 0] = repeat
            runs.append(timed(render, fresh, name, grid, repeat)[0] / steps)
        cost[name] = min(runs)
    return cost


def bench_catalogue(quick: bool, names: list[str]) -> None:
    import cv2

    cv2.setNumThreads(1)  # one core, as the target says
    for side, steps in ((224, 20), (3000, 5 if quick else 20)):
        print(f"\n1. catalogue: ms per augmented {side}x{side} image over a {steps}-step sweep (best of 3, one core)")
        image = photos(1, side)[0] if side <= 512 else cv2.resize(photos(1, 512)[0], (side, side),
                                                                    interpolation=cv2.INTER_CUBIC)
        render(image[:32, :32], "Brighten", [0.5], 0)
        cost = sweep_costs(image, steps, 3, names)
        median = float(np.median(list(cost.values())))
        for name, value in sorted(cost.items(), key=lambda item: -item[1])[:5]:
            print(f"    {name:<20} {value * 1000:7.2f} ms  {value / median:5.1f}x median")
        print(f"    catalogue median     {median * 1000:7.2f} ms")
        worst = max(cost, key=cost.get)
        report(f"costliest augmentation at {side} px ({worst}) / median", cost[worst] / median, "<= 10",
               cost[worst] / median <= 10, "x")
        if side < 3000:
            continue
        first = {}
        for name in names:  # a new image of a new shape: every cache cold
            fresh = np.ascontiguousarray(image[:, :-1 - len(first)])
            first[name] = timed(augment.augment_image, fresh, name, 1.0, 11)[0]
        worst = max(first, key=first.get)
        print("    first render at intensity 1 (new shape, cold caches): " + ", ".join(
            f"{name} {value:.2f} s" for name, value in sorted(first.items(), key=lambda item: -item[1])[:4]))
        report(f"slowest first render of a 3000 px photo at intensity 1 ({worst})", first[worst], "< 0.5",
               first[worst] < 0.5, "s")


# -- 2. overhead ratio -------------------------------------------------------------


def bench_overhead(name: str, predict, images: list[np.ndarray], batch: int) -> None:
    grid = GRID
    render_all(images[:1], grid)  # transforms built, caches warm, model loaded
    predict(images[:batch])
    aug_seconds, rendered = timed(render_all, images, grid)
    model_seconds, _ = timed(predict_all, predict, list(images) + rendered, batch)
    print(f"\n2. overhead, {name}: {len(images)} images x 24 augmentations x 20 intensities = "
          f"{len(rendered) + len(images)} predictions; model alone {model_seconds:.1f} s, "
          f"augmentations alone {aug_seconds:.1f} s")
    del rendered
    for workers in (0, len(os.sched_getaffinity(0))):
        augmenter = augment.ImageAugmenter(predict, batch_size=batch, progress=False)
        seconds, _ = timed(augmenter.search_randomization_boundaries, images, None, 0.05, None,
                           strategy="grid", num_workers=workers)
        label = "inline" if workers == 0 else f"{workers} render workers"
        ratio = seconds / (model_seconds + aug_seconds)
        report(f"overhead ratio, {name}, {label} ({seconds:.1f} s)", ratio, "<= 1.15", ratio <= 1.15)


# -- 3 and 4. adaptive search ----------------------------------------------------------


def seed_style_loop(predict_file, images: list[np.ndarray], grid: list[float]) -> dict[str, list]:
    """The seed README's loop: every intensity, a temporary PNG per augmented image, one predict per file."""
    from PIL import Image

    firsts: dict[str, list] = {name: [] for name in augment.ALL_AUGMENTATIONS}
    with tempfile.TemporaryDirectory() as folder:
        for image in images:
            path = os.path.join(folder, "original.png")
            Image.fromarray(image).save(path)
            reference = predict_file(path)
            for name in augment.ALL_AUGMENTATIONS:
                outputs = []
                for intensity in grid[1:]:
                    augmented = augment.augment_image(image, name, intensity, augment.augmentation_seed(image, name))
                    path = os.path.join(folder, f"{name}-{intensity}.png")
                    Image.fromarray(augmented).save(path)
                    outputs.append(predict_file(path))
                    os.unlink(path)
                first = next((t for t, output in zip(grid[1:], outputs) if str(output) != str(reference)), None)
                firsts[name].append(first)
    return firsts


def bench_adaptive(name: str, predict, images: list[np.ndarray], batch: int, target: float,
                   calls_images: list[np.ndarray] | None = None) -> None:
    from PIL import Image

    grid = GRID

    def predict_file(path):
        return predict([np.asarray(Image.open(path).convert("RGB"))])[0]

    print(f"\n3. adaptive search vs seed-style loop, {name}, {len(images)} images, step 0.05")
    loop_seconds, loop_firsts = timed(seed_style_loop, predict_file, images, grid)
    augmenter = augment.ImageAugmenter(predict, batch_size=batch, progress=False)
    seconds, analysis = timed(augmenter.search_randomization_boundaries, images, None, 0.05, None,
                              strategy="adaptive", grid_sample=0, num_workers=0)
    pairs = [(loop_firsts[n][k], analysis.curves[n].first_failure_intensities[k])
             for n in augment.ALL_AUGMENTATIONS for k in range(len(images))]
    agree = sum(a == b for a, b in pairs) / len(pairs)
    print(f"    seed-style loop {loop_seconds:.1f} s, adaptive {seconds:.1f} s; "
          f"first failures that agree: {agree:.1%}")
    report(f"adaptive speed-up over the seed-style loop, {name}", loop_seconds / seconds, f">= {target:g}",
           loop_seconds / seconds >= target, "x")
    if calls_images is None:
        return
    grid_augmenter = augment.ImageAugmenter(predict, batch_size=batch, progress=False)
    grid_analysis = grid_augmenter.search_randomization_boundaries(calls_images, None, 0.05, None, strategy="grid")
    adaptive_augmenter = augment.ImageAugmenter(predict, batch_size=batch, progress=False)
    adaptive = adaptive_augmenter.search_randomization_boundaries(calls_images, None, 0.05, None,
                                                                  strategy="adaptive", grid_sample=0)
    pairs = [(grid_analysis.curves[n].first_failure_intensities[k], adaptive.curves[n].first_failure_intensities[k])
             for n in augment.ALL_AUGMENTATIONS for k in range(len(calls_images))]
    agree = sum(a == b for a, b in pairs) / len(pairs)
    ratio = adaptive_augmenter.predict_calls / grid_augmenter.predict_calls
    print(f"\n4. model calls, {name}, {len(calls_images)} images: grid {grid_augmenter.predict_calls}, "
          f"adaptive {adaptive_augmenter.predict_calls}; first failures equal to the grid's: {agree:.1%}")
    report(f"adaptive / grid model calls, {name}", ratio, "<= 0.35", ratio <= 0.35)


# -- 5. memory ---------------------------------------------------------------------


def memory_child(count: int) -> None:
    """Run in a subprocess: search ``count`` digit PNG files, print the peak resident set (MiB)."""
    import resource

    from PIL import Image

    digits_model.predict(digits(256))  # model loaded: what every run holds before the search
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for k, image in enumerate(digits(count)):
            files.append(os.path.join(folder, f"digit-{k:05d}.png"))
            Image.fromarray(image).save(files[-1])
        augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=256, progress=False,
                                           checkpoint_seconds=5)
        augmenter.search_randomization_boundaries(files, None, 0.05, os.path.join(folder, "analysis.json"),
                                                  strategy="adaptive", num_workers=0)
        rows = os.path.join(folder, "analysis.json.rows")
        size = os.path.getsize(os.path.join(folder, "analysis.json")) + sum(
            os.path.getsize(os.path.join(rows, name)) for name in os.listdir(rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak:.1f} {baseline:.1f} {size / 2**20:.2f}")


def bench_memory(small: int, large: int) -> None:
    print("\n5. peak resident memory, adaptive search of digit files (all 24 augmentations, step 0.05)")
    peaks, extra = {}, {}
    for count in (small, large):
        seconds, out = timed(subprocess.run, [sys.executable, __file__, "--memory-child", str(count)],
                             capture_output=True, text=True, check=True)
        peak, baseline, size = map(float, out.stdout.split()[-3:])
        peaks[count], extra[count] = peak, peak - baseline
        print(f"    {count:>5} images: peak {peak:.0f} MiB, of which {peak - baseline:.0f} MiB above the process "
              f"with its model loaded; analysis.json and its rows {size:.1f} MiB; {seconds:.0f} s")
    growth = peaks[large] / peaks[small]
    report(f"peak memory growth, {small} -> {large} images", growth, "<= 1.5", growth <= 1.5, "x")
    print(f"    above the loaded model: {extra[small]:.0f} -> {extra[large]:.0f} MiB (the analysis itself grows "
          f"with images x augmentations; decoded images do not)")


# -- 7. the guided strategy ---------------------------------------------------------------


def bench_guided(name: str, predict, images: list[np.ndarray], batch: int, targets: bool) -> None:
    """Model calls per pair and agreement with the full grid, guided and adaptive, default settings."""
    grid_augmenter = augment.ImageAugmenter(predict, batch_size=batch, progress=False)
    grid = grid_augmenter.search_randomization_boundaries(images, None, 0.05, None, strategy="grid")
    pairs = len(images) * len(augment.ALL_AUGMENTATIONS)
    print(f"\n7. model calls per (image, augmentation) pair, {name}, {len(images)} images x "
          f"{len(augment.ALL_AUGMENTATIONS)} augmentations, step 0.05, default settings: grid "
          f"{grid_augmenter.predict_calls / pairs:.2f}")
    for strategy in ("adaptive", "guided"):
        augmenter = augment.ImageAugmenter(predict, batch_size=batch, progress=False)
        seconds, analysis = timed(augmenter.search_randomization_boundaries, images, None, 0.05, None,
                                  strategy=strategy)
        same = [grid.curves[n].first_failure_intensities[k] == analysis.curves[n].first_failure_intensities[k]
                for n in augment.ALL_AUGMENTATIONS for k in range(len(images))]
        per_pair, agree = augmenter.predict_calls / pairs, sum(same) / len(same)
        sample = len(analysis.settings["grid_sample"])
        model_alone, _ = timed(predict_all, predict, [images[k % len(images)] for k in range(augmenter.predict_calls)],
                               batch)
        print(f"    {strategy:<8} {per_pair:.2f} per pair ({augmenter.predict_calls} calls, {sample} images on the "
              f"whole grid), {seconds:.1f} s, the model alone on as many images {model_alone:.1f} s; first failures "
              f"equal to the grid's: {agree:.2%}")
        report(f"{strategy} search / the model alone on as many images, {name}", seconds / model_alone,
               "<= 1.3" if targets else "-", seconds / model_alone <= 1.3 if targets else None, "x")
        if strategy == "guided":
            report(f"guided: model calls per pair, {name}", per_pair, "<= 3.0" if targets else "-",
                   per_pair <= 3.0 if targets else None)
            report(f"guided: first failures equal to the full grid's, {name}", 100 * agree,
                   ">= 99" if targets else "-", agree >= 0.99 if targets else None, " %")


# -- 8. analyses of many images -------------------------------------------------------------


def rss(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, MiB (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def rows_child(count: int, folder: str) -> None:
    """Run in a subprocess: an adaptive search of ``count`` tiny images, timing every checkpoint."""
    images = tiny_images(count)
    warm = augment.ImageAugmenter(trivial_predict, batch_size=1024, progress=False)
    warm.search_randomization_boundaries(images[:2], None, 0.05, None, strategy="adaptive", num_workers=0)
    baseline = rss("VmRSS")  # the process with everything imported, before the search
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets the peak (VmHWM) to what is resident now
    saves: list[tuple[int, int, float]] = []  # (images searched, rows written, seconds)
    real_save = augment.Analysis._save  # what a search's checkpoints call

    def timed_save(self, path, compact=False, release=False):
        fresh = sum(len(c.diff_errors.fresh) for c in self.curves.values())
        started = time.perf_counter()
        real_save(self, path, compact, release)
        searched = int(self.curves["Brighten"].diff_errors.searched_mask().sum())  # reads no rows
        saves.append((searched, fresh, time.perf_counter() - started))

    augment.Analysis._save = timed_save
    augmenter = augment.ImageAugmenter(trivial_predict, batch_size=1024, progress=False, checkpoint_seconds=30)
    started = time.perf_counter()
    augmenter.search_randomization_boundaries(images, None, 0.05, os.path.join(folder, "analysis.json"),
                                              strategy="adaptive", num_workers=0)
    seconds = time.perf_counter() - started
    peak = rss("VmHWM")
    on_disk = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)
    print(json.dumps({"seconds": seconds, "peak": peak, "baseline": baseline, "saves": saves,
                      "bytes": on_disk, "calls": augmenter.predict_calls}))


def load_child(folder: str, report: bool) -> None:
    """Run in a subprocess: load the analysis and every summary (and render the report)."""
    started = time.perf_counter()
    analysis = augment.load_analysis(os.path.join(folder, "analysis.json"))
    text = augment.format_summary(analysis)
    loaded = time.perf_counter() - started
    rendered = imported = None
    if report:
        started = time.perf_counter()
        import albumentations  # noqa: F401  (it imports torch: a fixed cost of any render, timed apart)

        imported = time.perf_counter() - started
        augmenter = augment.ImageAugmenter(trivial_predict, batch_size=1024, progress=False)
        started = time.perf_counter()
        augmenter.load_analysis(os.path.join(folder, "analysis.json"))
        augmenter.render_boundaries(os.path.join(folder, "report"), images=tiny_images(len(analysis.images)))
        rendered = time.perf_counter() - started
    print(json.dumps({"load": loaded, "report": rendered, "import": imported, "lines": len(text.splitlines())}))


def bench_rows(largest: int) -> None:
    counts = sorted({min(10_000, largest), largest})
    print(f"\n8. analyses of many images: adaptive search of tiny 8x8 images x {len(augment.ALL_AUGMENTATIONS)} "
          f"augmentations, step 0.05, trivial model, checkpoints every 30 s")
    for count in counts:
        with tempfile.TemporaryDirectory() as folder:
            out = subprocess.run([sys.executable, __file__, "--rows-child", str(count), folder],
                                 capture_output=True, text=True, check=True).stdout
            run = json.loads(out.splitlines()[-1])
            extra = run["peak"] - run["baseline"]
            saves = run["saves"]
            print(f"    {count:>7} images: {run['seconds']:.0f} s, {run['calls'] / count / 24:.2f} calls per pair; "
                  f"peak {run['peak']:.0f} MiB, {extra:.0f} MiB above the process before the search; on disk "
                  f"{run['bytes'] / 2**20:.1f} MiB; {len(saves)} checkpoints")
            for searched, rows, seconds in saves[-3:]:
                print(f"        checkpoint with {searched:>7} images searched: {rows:>8} new rows in {seconds:.2f} s "
                      f"({1e6 * seconds / max(rows, 1):.1f} us per new row)")
            per_row = [seconds / rows for _, rows, seconds in saves if rows >= 1000]
            if per_row:
                report(f"checkpoint cost per new row, {count} images", 1e6 * float(np.median(per_row)), "-", None,
                       " us")
            report(f"peak memory above baseline, {count} images x 24", extra, "< 1024" if count >= 100_000 else "-",
                   extra < 1024 if count >= 100_000 else None, " MiB")
            out = subprocess.run([sys.executable, __file__, "--load-child", folder, "report"],
                                 capture_output=True, text=True, check=True).stdout
            loaded = json.loads(out.splitlines()[-1])
            print(f"        fresh process: load_analysis + every summary {loaded['load']:.2f} s; report "
                  f"{loaded['report']:.1f} s (after importing albumentations, which imports torch: "
                  f"{loaded['import']:.1f} s)")
            report(f"load + summaries, {count} images", loaded["load"], "< 5", loaded["load"] < 5, " s")
            report(f"report, {count} images", loaded["report"], "< 5", loaded["report"] < 5, " s")


ROWS_IN_MEMORY = {"auto": None, "memory": True, "released": False}


def dask_scale_child(count: int, folder: str, rows: str) -> None:
    """Run in a subprocess: the driver of a LocalCluster search of ``count`` tiny images."""
    import distributed

    images = tiny_images(count)
    warm = augment.ImageAugmenter(trivial_predict, batch_size=1024, progress=False)
    warm.search_randomization_boundaries(images[:2], None, 0.05, None, strategy="adaptive", num_workers=0)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])  # workers import tiny
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        baseline = rss("VmRSS")
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        augmenter = augment.ImageAugmenter(trivial_predict, batch_size=1024, progress=False, checkpoint_seconds=30)
        started = time.perf_counter()
        augmenter.search_randomization_boundaries(images, None, 0.05, os.path.join(folder, "analysis.json"),
                                                  strategy="adaptive", executor=client.get_executor(),
                                                  images_per_shard=256, rows_in_memory=ROWS_IN_MEMORY[rows])
        seconds = time.perf_counter() - started
        peak = rss("VmHWM")
    released = all(curve.diff_errors.released for curve in augmenter.analysis.curves.values())
    print(json.dumps({"seconds": seconds, "peak": peak, "baseline": baseline, "calls": augmenter.predict_calls,
                      "released": released}))


def bench_dask_scale(count: int, rows: str = "auto") -> None:
    print(f"\n9. Dask LocalCluster (2 worker processes, 1 thread each), adaptive search of {count} tiny 8x8 images "
          f"x 24 augmentations, trivial model")
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, __file__, "--dask-child", str(count), folder, rows],
                             capture_output=True, text=True, check=True).stdout
    run = json.loads(out.splitlines()[-1])
    print(f"    {run['seconds']:.0f} s, {count / run['seconds']:.0f} images/s, "
          f"{run['calls'] / count / 24:.2f} calls per pair; driver peak {run['peak']:.0f} MiB, "
          f"{run['peak'] - run['baseline']:.0f} MiB above the driver before the search "
          f"({(run['peak'] - run['baseline']) * 2**20 / count:.0f} bytes per image; rows "
          f"{'released to the shards at each checkpoint' if run['released'] else 'in memory'})")
    report(f"Dask, {count} images: driver memory above its baseline", run["peak"] - run["baseline"], "-", None,
           " MiB")
    report(f"Dask, {count} images: throughput", count / run["seconds"], "-", None, " images/s")


# -- 6. Dask -------------------------------------------------------------------------


def bench_dask(count: int) -> None:
    try:
        import distributed
    except ImportError:
        print("\n6. Dask: dask.distributed is not installed; skipped")
        return
    images = photos(count, 112)
    names = ["Brighten", "GaussianBlur", "SafeRotate", "RandomSizedCrop", "Hue", "PixelDropout"]
    local = augment.ImageAugmenter(resnet.load_predict(), augmentations=names, batch_size=32, progress=False)
    local_seconds, reference = timed(local.search_randomization_boundaries, images, None, 0.05, None,
                                     num_workers=0)
    started = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        startup = time.perf_counter() - started
        augmenter = augment.ImageAugmenter(predict_factory=functools.partial(resnet.load_predict, threads=1),
                                           augmentations=names, batch_size=32, progress=False)
        runs = [timed(augmenter.search_randomization_boundaries, images, None, 0.05, None,
                      executor=client.get_executor(), images_per_shard=1) for _ in range(2)]
    (cold, analysis), (warm, _) = runs
    same = analysis.to_json()["augmentations"] == reference.to_json()["augmentations"]
    print(f"\n6. Dask, ResNet-18 112x112, {count} images x {len(names)} augmentations, grid 0.05: local "
          f"{local_seconds:.1f} s (torch on all cores); 2 workers: first search {cold:.1f} s (workers import torch "
          f"and build the model), second {warm:.1f} s (model cached per worker); cluster start {startup:.1f} s; "
          f"same analysis as local: {same}")
    report("Dask (2 local workers) / local, first search (cold workers)", cold / local_seconds, "-", None, "x")
    report("Dask (2 local workers) / local, second search (model cached)", warm / local_seconds, "-", None, "x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not the figures)")
    parser.add_argument("--only", help="run one section", choices=[
        "catalogue", "overhead", "adaptive", "memory", "dask", "guided", "rows", "dask-scale"])
    parser.add_argument("--extended", action="store_true",
                        help="catalogue: the extended augmentations too (EXTENDED_AUGMENTATIONS)")
    parser.add_argument("--rows-images", type=int, default=100_000, help="rows: the largest analysis (images)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--load-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--dask-images", type=int, default=20_000, help="dask-scale: images")
    parser.add_argument("--dask-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--dask-rows", choices=["auto", "memory", "released"], default="auto",
                        help="dask-scale: rows_in_memory None (by size), True or False")
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    if args.rows_child:
        rows_child(int(args.rows_child[0]), args.rows_child[1])
        return 0
    if args.load_child:
        load_child(args.load_child[0], args.load_child[1] == "report")
        return 0
    if args.dask_child:
        dask_scale_child(int(args.dask_child[0]), args.dask_child[1], args.dask_child[2])
        return 0
    quick = args.quick
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, python "
          f"{platform.python_version()}, {'quick' if quick else 'full'} run")
    def wanted(section: str) -> bool:
        return args.only in (None, section)

    if wanted("catalogue"):
        extended = augment.EXTENDED_AUGMENTATIONS if args.extended else []
        bench_catalogue(args.quick, augment.ALL_AUGMENTATIONS + extended)
    resnet_predict = resnet.load_predict()
    if wanted("overhead"):
        bench_overhead("small CNN 32x32", digits_model.predict, digits(10 if quick else 60), 256)
        bench_overhead("ResNet-18 112x112", resnet_predict, photos(1 if quick else 3, 112), 32)
    if wanted("adaptive"):
        bench_adaptive("small CNN 32x32", digits_model.predict, digits(2 if quick else 10), 256, 10,
                       calls_images=digits(20 if quick else 200))
        bench_adaptive("ResNet-18 112x112", resnet_predict, photos(1 if quick else 2, 112), 32, 3)
    if wanted("memory"):
        bench_memory(50 if quick else 200, 200 if quick else 2000)
    if wanted("dask"):
        bench_dask(2 if quick else 6)
    if wanted("guided"):
        bench_guided("small CNN 32x32", digits_model.predict, digits(40 if quick else 200), 256, True)
        bench_guided("ResNet-18 112x112", resnet_predict, photo_crops(5 if quick else 24, 112), 32, False)
    if wanted("rows"):
        bench_rows(2_000 if quick else args.rows_images)
    if wanted("dask-scale"):
        bench_dask_scale(1_000 if quick else args.dask_images, args.dask_rows)
    print("\n| figure | measured | target | |\n|---|---|---|---|")
    for row in ROWS:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
