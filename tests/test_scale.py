"""Scale: the adaptive strategy, render workers, executors and Dask give the grid's boundaries."""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import sys

import numpy as np
import pytest
from conftest import BrightnessModel, make_augmenter, uniform_images, write_pngs
from models import oracles

import augment

VALUES = [5, 30, 60, 90, 110, 125, 20, 70]  # Brighten flips at (127 - v) / 255, Darken at (v - 127) / 255


make = make_augmenter


def boundaries(analysis):
    return {name: curve.first_failure_intensities for name, curve in analysis.curves.items()}


def test_adaptive_finds_the_grid_first_failures_with_a_third_of_the_calls():
    images = uniform_images(VALUES + [200, 240])
    grid_model, adaptive_model = BrightnessModel(), BrightnessModel()
    grid = make(grid_model).search_randomization_boundaries(images, None, 0.05, None)
    adaptive = make(adaptive_model).search_randomization_boundaries(images, None, 0.05, None,
                                                                    strategy="adaptive", grid_sample=0)
    assert boundaries(adaptive) == boundaries(grid)
    expected = [round(np.ceil((127 - v) / 255 / 0.05 - 1e-9) * 0.05, 6) if v < 127 else None for v in VALUES]
    assert grid.curves["Brighten"].first_failure_intensities[:len(VALUES)] == expected
    assert grid_model.calls == len(images) * (1 + 2 * 20)
    assert adaptive_model.calls <= 0.35 * grid_model.calls
    assert adaptive.settings["strategy"] == "adaptive" and adaptive.settings["grid_sample"] == []
    row = adaptive.curves["Brighten"].diff_errors[0]
    assert row[0] == 0.0 and None in row  # unmeasured intensities stay empty, not zero


def test_adaptive_measures_a_seeded_sample_on_the_whole_grid_for_the_curves(tmp_path):
    images = uniform_images(VALUES)
    path = tmp_path / "analysis.json"
    analysis = make(BrightnessModel()).search_randomization_boundaries(images, None, 0.1, path,
                                                                       strategy="adaptive", grid_sample=3)
    sample = analysis.settings["grid_sample"]
    assert len(sample) == 3
    curve = augment.load_analysis(path).curves["Brighten"]
    assert [k for k, row in enumerate(curve.diff_errors) if None not in row] == sample
    assert curve.full_grid_count == 3 and curve.adaptive_agreement == 1.0
    assert len(curve.mean_diff_error) == 11
    # the same seed picks the same sample; a grid run over the cache completes the other rows (an "auto" one
    # would keep the file's strategy)
    again = make(BrightnessModel()).search_randomization_boundaries(images, None, 0.1, None,
                                                                    strategy="adaptive", grid_sample=3)
    assert again.settings["grid_sample"] == sample
    model = BrightnessModel()
    full = make(model).search_randomization_boundaries(images, None, 0.1, path, strategy="grid")
    assert model.calls == (len(images) - 3) * (1 + 2 * 10)
    assert full.curves["Brighten"].full_grid_count == len(images)


def test_adaptive_probe_misses_a_failure_narrower_than_its_coarse_step_and_says_so():
    threshold = 0.5
    steady = [0.0] * 9 + [1.0] * 12  # fails from index 9 on
    spike = [0.0] * 5 + [1.0] + [0.0] * 10 + [1.0] * 5  # a blip at 5, then from 16 on
    assert augment._replay_probe("adaptive", steady, threshold) == (9, 5)  # 4, 8, 12 then 10, 9
    assert augment._replay_probe("grid", steady, threshold) == (9, 20)
    assert augment._replay_probe("adaptive", spike, threshold)[0] == 16  # the blip falls between probes
    curve = augment.AugmentationCurve("Brighten", augment._grid(0.05), threshold, "", [steady, spike])
    assert curve.adaptive_agreement == 0.5


def test_guided_probe_bisects_by_the_prior_and_settles_a_robust_augmentation_in_one_call():
    points = 20
    never = [0.0] * 21
    mostly_never = [0] * (points + 1) + [40]  # prior: 40 earlier images never failed
    assert augment._replay_probe("guided", never, 0.5) == (None, 4)  # no prior: plain bisection of 21 outcomes
    probe = augment._guided_probe(points, mostly_never)
    assert next(probe) == (points,)  # one probe at intensity 1 ...
    with pytest.raises(StopIteration) as stop:
        probe.send({points: False})
    assert stop.value.value is None  # ... settles "never"
    clustered = [0] * (points + 2)
    clustered[7] = 30  # earlier images all failed at index 7
    probe, asked, row = augment._guided_probe(points, clustered), [], [0.0] * 7 + [1.0] * 14
    request = next(probe)
    try:
        while True:
            asked += request
            request = probe.send({i: row[i] >= 0.5 for i in request})
    except StopIteration as stop:
        assert stop.value == 7
    assert asked[:2] == [7, 6] and len(asked) <= 3  # straight at the cluster, then its left edge


def test_guided_finds_the_grid_first_failures_with_fewer_calls_and_resumes_exactly(tmp_path):
    images = uniform_images(VALUES * 4 + [200, 240])
    grid_model, guided_model = BrightnessModel(), BrightnessModel()
    grid = make(grid_model).search_randomization_boundaries(images, None, 0.05, None)
    guided = make(guided_model).search_randomization_boundaries(images, None, 0.05, None, strategy="guided")
    assert boundaries(guided) == boundaries(grid)
    assert guided.settings["strategy"] == "guided" and len(guided.settings["grid_sample"]) == 4
    assert guided_model.calls <= 0.3 * grid_model.calls  # 4 of the 34 images on the whole grid
    again = make(BrightnessModel()).search_randomization_boundaries(images, None, 0.05, None, strategy="guided")
    assert again.to_json()["augmentations"] == guided.to_json()["augmentations"]  # seeded, deterministic
    # a search that dies halfway resumes to the very rows (which intensities were asked) of an uninterrupted one
    path = tmp_path / "analysis.json"
    crashing = make(BrightnessModel(fail_after=150), checkpoint_seconds=0)
    with pytest.raises(RuntimeError, match="model crashed"):
        crashing.search_randomization_boundaries(images, None, 0.05, path, strategy="guided")
    done = augment.load_analysis(path).curves["Brighten"].searched_count
    assert 0 < done < len(images)
    resumed = make(BrightnessModel()).search_randomization_boundaries(images, None, 0.05, path, strategy="guided")
    assert resumed.to_json()["augmentations"] == guided.to_json()["augmentations"]


def test_guided_reports_a_non_monotone_row_as_disagreement():
    images = uniform_images([100] * 6)
    analysis = make(Band(), augmentations=["Brighten"]).search_randomization_boundaries(
        images, None, 0.05, None, strategy="guided", grid_sample=2)
    curve = analysis.curves["Brighten"]
    full = [row for row in curve.diff_errors if None not in row]
    assert len(full) == 2 and all(row[3] == 1.0 and row[4] == row[-1] == 0.0 for row in full)  # changed, back
    assert curve.adaptive_agreement == 0.0  # a monotone probe misses it on the sample, and says so
    # two sample rows are too few to leave bisection (at least 3, and half, must be not monotone): the
    # blip is narrower than the prior's pull, and the other images miss it
    sample = analysis.settings["grid_sample"]
    assert curve.first_failure_intensities == [0.15 if k in sample else None for k in range(6)]


class Band:  # says 1 only while the mean is within (127, 140): Brighten changes it, then changes it back
    def __call__(self, images):
        return [int(127 < np.asarray(image).mean() < 140) for image in images]


def test_guided_measures_an_augmentation_on_the_full_grid_where_most_sample_rows_are_not_monotone():
    images = uniform_images([100] * 10)
    calls = []

    def counted(batch):
        calls.append(len(batch))
        return Band()(batch)

    analysis = make(counted, augmentations=["Brighten", "Darken"]).search_randomization_boundaries(
        images, None, 0.05, None, strategy="guided", grid_sample=4)
    brighten, darken = analysis.curves["Brighten"], analysis.curves["Darken"]
    # Brighten: all 4 sample rows change and change back, so bisection cannot be trusted: every other
    # image is measured on the whole grid too, and every first failure is the grid's
    assert brighten.first_failure_intensities == [0.15] * 10
    assert all(None not in row for row in brighten.diff_errors)
    # Darken never changes the output (monotone rows): the other images stay on the fewest questions
    assert darken.first_failure_intensities == [None] * 10
    assert sum(None in row for row in darken.diff_errors) == 6
    assert sum(calls) < 10 * (1 + 2 * 20)


def test_a_guided_search_with_the_full_grid_fallback_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path):
    class CrashingBand(Band):  # Band, and a crash after ``fail_after`` predictions
        def __init__(self, fail_after=None):
            self.calls, self.fail_after = 0, fail_after

        def __call__(self, images):
            if self.fail_after is not None and self.calls + len(images) > self.fail_after:
                raise RuntimeError("model crashed")
            self.calls += len(images)
            return super().__call__(images)

    images = uniform_images([100] * 12 + [30] * 12)
    whole = make(CrashingBand(), augmentations=["Brighten", "Darken"]).search_randomization_boundaries(
        images, None, 0.05, None, strategy="guided", grid_sample=4)
    assert all(None not in row for row in whole.curves["Brighten"].diff_errors)  # the fallback fired
    path = tmp_path / "analysis.json"
    for fail_after in (150, 400):  # in the sample block, then after it
        if path.exists():
            path.unlink()
        crashing = make(CrashingBand(fail_after), augmentations=["Brighten", "Darken"], checkpoint_seconds=0)
        with pytest.raises(RuntimeError, match="model crashed"):
            crashing.search_randomization_boundaries(images, None, 0.05, path, strategy="guided", grid_sample=4)
        resumed = make(CrashingBand(), augmentations=["Brighten", "Darken"]).search_randomization_boundaries(
            images, None, 0.05, path, strategy="guided", grid_sample=4)
        for name in ("Brighten", "Darken"):
            assert list(resumed.curves[name].diff_errors) == list(whole.curves[name].diff_errors), (fail_after, name)


def test_the_default_strategy_is_the_grid_for_small_searches_and_guided_from_2000_pairs():
    small = make(BrightnessModel()).search_randomization_boundaries(uniform_images(VALUES, (8, 8)), None, 0.05, None)
    assert small.settings["strategy"] == "grid" and small.settings["grid_sample"] is None
    values = [int(v) for v in np.linspace(0, 255, 1000)]
    grid_model, auto_model = BrightnessModel(), BrightnessModel()
    images = uniform_images(values, (8, 8))
    large = make(auto_model).search_randomization_boundaries(images, None, 0.05, None)  # 2 x 1000 pairs
    assert large.settings["strategy"] == "guided" and len(large.settings["grid_sample"]) == 20  # 2 %
    grid = make(grid_model).search_randomization_boundaries(images, None, 0.05, None, strategy="grid")
    assert boundaries(large) == boundaries(grid)
    assert auto_model.calls <= 0.25 * grid_model.calls  # the originals, the sample, ~3 per other pair


def test_an_auto_search_over_a_file_keeps_the_strategy_it_was_searched_with(tmp_path):
    images = uniform_images([int(v) for v in np.linspace(0, 255, 1000)], (8, 8))
    path = tmp_path / "analysis.json"
    first = make(BrightnessModel()).search_randomization_boundaries(images, None, 0.05, path)
    assert first.settings["strategy"] == "guided"  # 2 x 1000 pairs
    # one augmentation more would be 1,000 pairs (grid) on its own: the file's strategy is kept, nothing
    # searched is measured again, and the new augmentation is searched the guided way
    model = BrightnessModel()
    more = make(model, augmentations=["Brighten", "Darken", "Contrast"]).search_randomization_boundaries(
        images, None, 0.05, path)
    assert more.settings["strategy"] == "guided" and more.settings["grid_sample"] == first.settings["grid_sample"]
    assert model.calls < 0.25 * len(images) * 21
    subset = BrightnessModel()
    again = make(subset, augmentations=["Brighten"]).search_randomization_boundaries(images, None, 0.05, path)
    assert subset.calls == 0 and again.settings["strategy"] == "guided"
    # a file searched adaptively (any size) stays adaptive, its sample untouched
    adaptive_path = tmp_path / "adaptive.json"
    adaptive = make(BrightnessModel()).search_randomization_boundaries(images[:300], None, 0.05, adaptive_path,
                                                                       strategy="adaptive")
    quiet = BrightnessModel()
    kept = make(quiet).search_randomization_boundaries(images[:300], None, 0.05, adaptive_path)
    assert quiet.calls == 0 and kept.settings["strategy"] == "adaptive"
    assert kept.settings["grid_sample"] == adaptive.settings["grid_sample"]


def test_guided_goes_on_after_a_block_whose_images_are_all_unreadable(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images(VALUES * 3))
    for path in files[:8]:  # the whole first block (no full-grid sample)
        with open(path, "wb") as handle:
            handle.write(b"not a png")
    with pytest.warns(UserWarning, match="8 of 24 images skipped"):
        analysis = make(BrightnessModel()).search_randomization_boundaries(files, None, 0.05, None,
                                                                           strategy="guided", grid_sample=0)
    assert analysis.curves["Brighten"].searched == list(range(8, 24))


def test_guided_agreement_replays_the_guided_probe():
    class Blip:  # changed only at intensity 0.2: the adaptive walk lands on it, a prior-guided probe does not
        def __call__(self, images):
            return [int(127 < np.asarray(image).mean() < 140) for image in images]

    analysis = make(Blip(), augmentations=["Brighten"]).search_randomization_boundaries(
        uniform_images([80] * 6), None, 0.05, None, strategy="guided", grid_sample=2)
    curve = analysis.curves["Brighten"]
    row = next(row for row in curve.diff_errors if None not in row)
    assert augment._replay_probe("adaptive", row, 0.5)[0] == 4
    assert None in curve.first_failure_intensities  # the guided search missed it on images off the sample
    assert curve.adaptive_agreement == 0.0  # and its agreement says so (replaying the adaptive walk said 1.0)


def test_guided_on_an_executor_finds_the_local_first_failures(tmp_path):
    images = uniform_images(VALUES * 4)
    local = make(BrightnessModel()).search_randomization_boundaries(images, None, 0.05, None, strategy="guided")
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        sharded = make(oracles.bright).search_randomization_boundaries(
            images, None, 0.05, None, strategy="guided", executor=executor, images_per_shard=8)
    assert boundaries(sharded) == boundaries(local)


def test_each_image_is_decoded_once_and_at_most_a_chunk_is_in_flight(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images(VALUES))
    augmenter = make(BrightnessModel())
    augmenter.events = []  # the search pipeline's documented hook: ("decode" | "release", image index)
    augmenter.search_randomization_boundaries(files, None, 0.1, None, images_in_flight=3, strategy="adaptive",
                                              grid_sample=2)
    decoded = [index for event, index in augmenter.events if event == "decode"]
    assert sorted(decoded) == list(range(len(files)))  # each image decoded exactly once
    alive, peak = set(), 0
    for event, index in augmenter.events:
        (alive.add if event == "decode" else alive.discard)(index)
        peak = max(peak, len(alive))
    assert peak == 3 and not alive


def test_render_workers_give_the_same_analysis_as_rendering_inline(tmp_path):
    from examples import digits_model

    images, _ = digits_model.load_digits_rgb()
    names = ["Brighten", "GaussianBlur", "SafeRotate", "Superpixels", "ElasticTransform", "MotionBlur"]
    analyses = [augment.ImageAugmenter(digits_model.predict, augmentations=names, batch_size=64, progress=False)
                .search_randomization_boundaries(list(images[:6]), None, 0.1, None, num_workers=workers)
                for workers in (0, 2)]
    assert analyses[0].to_json()["augmentations"] == analyses[1].to_json()["augmentations"]


def test_a_process_pool_executor_gives_the_local_analysis_and_a_failed_shard_costs_only_itself(tmp_path):
    coloured = np.full((8, 8, 3), (40, 90, 140), np.uint8)
    images = write_pngs(tmp_path / "imgs", uniform_images(VALUES) + [coloured])
    local = make(oracles.bright).search_randomization_boundaries(images, None, 0.1, None)
    path, flag = tmp_path / "analysis.json", tmp_path / "poison"
    flag.write_text("on")
    factory = functools.partial(oracles.brightness_factory, str(tmp_path), str(flag))
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        with pytest.raises(RuntimeError, match="coloured image"):
            make(predict_factory=factory).search_randomization_boundaries(
                images, None, 0.1, path, executor=pool, images_per_shard=3)
        partial = augment.load_analysis(path)
        assert partial.curves["Brighten"].searched == [0, 1, 2, 3, 4, 5]  # the coloured image's shard is missing
        flag.unlink()
        resumed = make(predict_factory=factory)
        analysis = resumed.search_randomization_boundaries(images, None, 0.1, path, executor=pool,
                                                           images_per_shard=3)
    assert resumed.predict_calls == 3 * (1 + 2 * 10)  # only the lost shard
    assert analysis.to_json()["augmentations"] == local.to_json()["augmentations"]


def test_an_unpicklable_model_for_an_executor_is_a_clear_error():
    class Local:
        def __call__(self, images):
            return [0] * len(images)

        def __reduce__(self):
            raise TypeError("cannot pickle this model")

    with concurrent.futures.ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="predict_factory"):
        make(Local()).search_randomization_boundaries(uniform_images([10]), None, 0.5, None, executor=pool)


def test_an_interrupted_multi_worker_search_resumes_from_its_checkpoint(tmp_path):
    images = write_pngs(tmp_path / "imgs", uniform_images(VALUES))
    reference = make(oracles.bright).search_randomization_boundaries(images, None, 0.1, None)
    path = tmp_path / "analysis.json"
    with pytest.raises(RuntimeError, match="model crashed"):
        make(BrightnessModel(fail_after=70), checkpoint_seconds=0).search_randomization_boundaries(
            images, None, 0.1, path, num_workers=2, images_in_flight=1)
    done = augment.load_analysis(path).curves["Brighten"].searched_count
    assert 0 < done < len(images)
    model = BrightnessModel()
    resumed = make(model).search_randomization_boundaries(images, None, 0.1, path, num_workers=2)
    assert model.calls == (len(images) - done) * (1 + 2 * 10)
    assert resumed.to_json()["augmentations"] == reference.to_json()["augmentations"]


def test_dask_local_cluster_with_two_workers_gives_the_local_analysis_and_resumes(tmp_path):
    distributed = pytest.importorskip("distributed")
    coloured = np.full((8, 8, 3), (40, 90, 140), np.uint8)
    images = write_pngs(tmp_path / "imgs", uniform_images(VALUES + [0, 200, 240]) + [coloured])
    local = make(oracles.bright).search_randomization_boundaries(images, None, 0.1, tmp_path / "local.json",
                                                                strategy="adaptive", grid_sample=4)
    logs, flag, path = tmp_path / "loads", tmp_path / "poison", tmp_path / "analysis.json"
    logs.mkdir()
    flag.write_text("on")
    factory = functools.partial(oracles.brightness_factory, str(logs), str(flag))
    # the client keeps no rows in memory: they are in the shards it appends (a million images' way)
    options = {"strategy": "adaptive", "grid_sample": 4, "images_per_shard": 2, "rows_in_memory": False}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with pytest.raises(RuntimeError, match="coloured image"):
            make(predict_factory=factory).search_randomization_boundaries(
                images, None, 0.1, path, executor=client.get_executor(), **options)
        assert augment.load_analysis(path).curves["Brighten"].searched == list(range(len(images) - 2))
        flag.unlink()
        augmenter = make(predict_factory=factory)
        analysis = augmenter.search_randomization_boundaries(images, None, 0.1, path,
                                                             executor=client.get_executor(), **options)
        worker_pids = set(client.run(os.getpid).values())
    assert all(curve.diff_errors.released for curve in analysis.curves.values())
    assert analysis.summary_rows() == local.summary_rows()
    assert analysis.to_json()["augmentations"] == local.to_json()["augmentations"]
    assert augment.load_analysis(path).complete
    # the files too: the Dask search's shards (a failed run's, then the resumed one's) hold the local rows
    saved, here = (augment.load_analysis(p).to_json() for p in (path, tmp_path / "local.json"))
    assert saved["augmentations"] == here["augmentations"] and saved["images"] == here["images"]
    assert len(json.loads(path.read_text())["rows"]["shards"]) >= 2
    lost = [len(images) - 2, len(images) - 1]  # the coloured image's shard
    measured = sum(v is not None for curve in analysis.curves.values() for k in lost for v in curve.diff_errors[k][1:])
    assert augmenter.predict_calls == len(lost) + measured  # the re-run searched only the lost shard
    loads = [name.split("-")[1] for name in os.listdir(logs)]
    assert len(loads) == len(set(loads)) and set(map(int, loads)) <= worker_pids  # once per worker process


# -- a real cluster: scheduler and workers as separate processes ------------------------------


def start_cluster(folder, scheduler_env, worker_env):
    """`dask scheduler` and `dask worker --nworkers 2` as the user starts them; returns (address, processes)."""
    import json
    import shutil
    import subprocess
    import time

    dask = shutil.which("dask")
    if dask is None:
        pytest.skip("the dask command is not installed")
    file = folder / "scheduler.json"
    processes = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(file), "--port", "0",
                                   "--dashboard-address", ":0"], env=scheduler_env, cwd=folder,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.time() + 60
    while not file.exists() and time.time() < deadline:
        time.sleep(0.2)
    processes.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nworkers", "2",
                                       "--nthreads", "1", "--dashboard-address", ":0"], env=worker_env,
                                      cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return json.loads(file.read_text())["address"], processes


@pytest.fixture
def real_cluster(tmp_path):
    """A scheduler and two worker processes that import augment from this checkout."""
    from conftest import ROOT

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    address, processes = start_cluster(tmp_path, env, env)
    yield address
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def test_cli_and_api_search_on_a_real_scheduler_and_worker_processes(real_cluster, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    distributed = pytest.importorskip("distributed")
    files = write_pngs(tmp_path / "imgs", uniform_images(VALUES))
    local = make(oracles.bright).search_randomization_boundaries(files, None, 0.1, None)
    with distributed.Client(real_cluster, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        workers = set(client.run(os.getpid).values())
        api = make(oracles.bright).search_randomization_boundaries(
            files, None, 0.1, tmp_path / "api.json", executor=client.get_executor(), images_per_shard=2)
    assert len(workers) == 2 and os.getpid() not in workers
    assert api.to_json()["augmentations"] == local.to_json()["augmentations"]
    # the command line, with --predict a file (not an importable module) and its model cache's lock
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "search", "--predict",
                             str(ROOT / "tests" / "models" / "oracles.py") + ":locked_bright", "--batch-size", "4",
                             "--images", str(tmp_path / "imgs" / "*.png"), "--augmentations", "Brighten", "Darken",
                             "--step", "0.1", "--cache", str(tmp_path / "cli.json"), "--dask", real_cluster],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    cli = augment.load_analysis(tmp_path / "cli.json").to_json()["augmentations"]
    assert {name: c["diff_errors"] for name, c in cli.items()} == {
        name: c["diff_errors"] for name, c in local.to_json()["augmentations"].items()}
    assert json.loads((tmp_path / "cli.json").read_text())["version"] == 4


@pytest.mark.slow
def test_a_scheduler_that_cannot_import_augment_is_named_in_the_error(tmp_path):
    from conftest import ROOT

    distributed = pytest.importorskip("distributed")
    bare = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    address, processes = start_cluster(tmp_path, bare, {**bare, "PYTHONPATH": str(ROOT)})
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            with pytest.raises(Exception) as caught:
                make(oracles.bright).search_randomization_boundaries(
                    uniform_images(VALUES), None, 0.1, None, executor=client.get_executor())
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    assert "the Dask scheduler too" in "\n".join(getattr(caught.value, "__notes__", []))


@pytest.mark.parametrize("kind", ["labels", "boxes"])
def test_an_executor_shards_packed_results_give_the_local_analysis_with_labels_and_positional_outputs(tmp_path, kind):
    """Workers send a shard's results back as arrays (_PackedResults); merged a column at a time they
    give what the local search gives: label rows, output texts, positional views, in memory or released."""
    import concurrent.futures

    from examples import shapes

    images, truths = shapes.make_shapes(6, seed=3)
    files = write_pngs(tmp_path / "imgs", images)
    if kind == "labels":
        labels, options = [int(np.asarray(image).mean() > 110) for image in images], {}
        model, diff = oracles.bright, None
    else:
        labels, options = [[t["box"]] for t in truths], {"label_format": "pascal_voc"}
        model, diff = shapes.predict_boxes, shapes.box_diff_error
    names = ["Brighten", "SafeRotate", "RandomSizedCrop"]

    def search(path, **more):
        return augment.ImageAugmenter(model, diff, augmentations=names, batch_size=16, progress=False,
                                      checkpoint_seconds=0, **options).search_randomization_boundaries(
            files, labels, 0.1, path, strategy="adaptive", grid_sample=2, **more)

    local = search(tmp_path / "local.json")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for rows_in_memory in (True, False):
            path = tmp_path / f"sharded-{rows_in_memory}.json"
            sharded = search(path, executor=pool, images_per_shard=2, rows_in_memory=rows_in_memory)
            assert sharded.summary_rows() == local.summary_rows()
            assert sharded.to_json()["augmentations"] == local.to_json()["augmentations"]
            assert sharded.to_json()["images"] == local.to_json()["images"]
            assert augment.load_analysis(path).to_json()["augmentations"] == local.to_json()["augmentations"]


def test_renders_on_several_threads_draw_what_one_thread_draws():
    """Shards on a thread pool render at once: each thread seeds and draws from its own transform."""
    import concurrent.futures

    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    jobs = [(name, seed) for seed in range(60) for name in ("RandomSizedCrop", "PixelDropout", "ElasticTransform")]
    alone = [augment._apply_augmentation(image, name, 0.5, seed) for name, seed in jobs]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between any two bytecodes: a shared generator shows
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda job: augment._apply_augmentation(image, job[0], 0.5, job[1]), jobs))
    finally:
        sys.setswitchinterval(switching)
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def test_an_executor_gets_a_few_shards_per_worker_at_a_time_not_all_at_once(tmp_path):
    """A submitted task holds its images' sources in this process: shards go out as earlier ones finish."""
    import concurrent.futures
    import threading

    class Counting(concurrent.futures.ThreadPoolExecutor):
        def __init__(self):
            super().__init__(2)
            self.outstanding, self.most, self.lock = 0, 0, threading.Lock()

        def submit(self, fn, /, *args, **kwargs):
            with self.lock:
                self.outstanding += 1
                self.most = max(self.most, self.outstanding)
            future = super().submit(fn, *args, **kwargs)
            future.add_done_callback(lambda _: self._finished())
            return future

        def _finished(self):
            with self.lock:
                self.outstanding -= 1

    images = write_pngs(tmp_path / "imgs", uniform_images(VALUES * 4))
    local = make(oracles.bright).search_randomization_boundaries(images, None, 0.1, None, strategy="adaptive")
    with Counting() as pool:
        sharded = make(oracles.bright).search_randomization_boundaries(images, None, 0.1, None, strategy="adaptive",
                                                                       executor=pool, images_per_shard=1)
    assert pool.most <= augment._shards_in_flight(pool) == 4 < len(images)
    assert sharded.to_json()["augmentations"] == local.to_json()["augmentations"]


def test_a_shard_the_executor_cancels_is_an_error_naming_it_and_the_other_shards_are_saved(tmp_path):
    """A future cancelled by the executor (its shutdown, a lost worker), notified or not, is not lost silently."""
    import concurrent.futures

    class Cancelling(concurrent.futures.ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn, /, *args, **kwargs):
            self.submitted += 1
            if self.submitted in (2, 3):  # one cancelled and notified, one cancelled as shutdown leaves it
                future = concurrent.futures.Future()
                future.cancel()
                if self.submitted == 2:
                    future.set_running_or_notify_cancel()
                return future
            return super().submit(fn, *args, **kwargs)

    images = write_pngs(tmp_path / "imgs", uniform_images(VALUES))
    path = tmp_path / "analysis.json"
    with Cancelling(2) as pool, pytest.raises(augment.AugmentError, match="executor cancelled the shard of images"):
        make(oracles.bright).search_randomization_boundaries(images, None, 0.1, path, executor=pool,
                                                             images_per_shard=2)
    searched = augment.load_analysis(path).curves["Brighten"].searched
    assert searched == [0, 1, 6, 7]  # shards 2 and 3 (images 2-5) were cancelled; the others are saved
