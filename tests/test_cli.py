"""The command line, run as a user types it: ``python augment.py ...`` in a fresh process.

Nothing here calls augment.main in-process: a test that passes only because pytest imported
something first (``importlib.util`` once did) proves nothing about the command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, uniform_images, wait_for, write_pngs

import augment

ORACLE = "tests/models/oracles.py"  # relative, as typed from the repository root


def cli(*args, cwd=ROOT, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "augment.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, **options)


def search_args(folder, *extra, predict="bright", cache=None):
    return ["search", "--predict", f"{ORACLE}:{predict}", "--batch-size", "8", "--images", f"{folder}/*.png",
            "--augmentations", "Brighten", "--step", "0.1", "--cache", cache or folder.parent / "analysis.json",
            *extra]


def test_the_readme_search_example_runs_in_a_fresh_process(tmp_path):
    from PIL import Image

    sys.path.insert(0, str(ROOT / "examples"))
    from digits_model import load_digits_rgb

    images, _ = load_digits_rgb()
    (tmp_path / "train").mkdir()
    for k in range(3):
        Image.fromarray(images[k]).save(tmp_path / "train" / f"{k}.png")
    # The README's form: --predict path/to/file.py:function (once an AttributeError on importlib.util).
    result = cli("search", "--predict", "examples/digits_model.py:predict", "--batch-size", "256", "--images",
                 f"{tmp_path}/train/*.png", "--augmentations", "Brighten", "SafeRotate", "--step", "0.25",
                 "--cache", tmp_path / "analysis.json")
    assert result.returncode == 0, result.stderr
    assert "SafeRotate" in result.stdout and "predictions this run" in result.stdout
    assert augment.load_analysis(tmp_path / "analysis.json").complete


def test_search_prints_the_table_and_the_adaptive_strategy_finds_the_same_boundaries(tmp_path):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))
    (tmp_path / "labels.json").write_text(json.dumps({"img-0.png": 0, "img-1.png": 0, "img-2.png": 0}))
    result = cli(*search_args(tmp_path / "imgs", "--labels", tmp_path / "labels.json"))
    assert result.returncode == 0, result.stderr
    assert re.search(r"Brighten\s+0\.10\s+0\.20\s+0\.30\s+0\.40", result.stdout)  # 100, 70, 40 flip at +.2/.3/.4
    assert augment.load_analysis(tmp_path / "analysis.json").curves["Brighten"].first_failure_intensities == [
        0.4, 0.3, 0.2]
    adaptive = cli(*search_args(tmp_path / "imgs", "--strategy", "adaptive", "--grid-sample", "1", "--step",
                                "0.05", cache=tmp_path / "adaptive.json"))
    assert adaptive.returncode == 0, adaptive.stderr
    analysis = augment.load_analysis(tmp_path / "adaptive.json")
    assert analysis.settings["strategy"] == "adaptive" and len(analysis.settings["grid_sample"]) == 1
    assert analysis.curves["Brighten"].first_failure_intensities == [0.35, 0.25, 0.15]


def test_a_label_list_follows_one_sorted_order_whatever_the_order_of_the_patterns(tmp_path):
    # Two folders whose files interleave: a/ holds dark images (label 0), b/ bright ones (label 1).
    write_pngs(tmp_path / "a", uniform_images([30, 40]), prefix="x")
    write_pngs(tmp_path / "b", uniform_images([200, 210]), prefix="x")
    (tmp_path / "labels.json").write_text(json.dumps([0, 0, 1, 1]))  # sorted: a/x-0, a/x-1, b/x-0, b/x-1
    for patterns in ([f"{tmp_path}/a/*.png", f"{tmp_path}/b/*.png"], [f"{tmp_path}/b/*.png", f"{tmp_path}/a/*.png"]):
        result = cli("evaluate", "--predict", f"{ORACLE}:bright", "--batch-size", "4", "--images", *patterns,
                     "--labels", tmp_path / "labels.json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["accuracy"] == 1.0, patterns
    listing = cli("evaluate", "--predict", f"{ORACLE}:bright", "--images", f"{tmp_path}/b/*.png",
                  f"{tmp_path}/a/*.png", "--labels", tmp_path / "labels.json", "--dry-run")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0] == f"0\t{tmp_path}/a/x-0.png\t0" and lines[3] == f"3\t{tmp_path}/b/x-1.png\t1"
    assert "dry run" in lines[-1]


def test_labels_keyed_by_an_ambiguous_base_name_are_refused(tmp_path):
    write_pngs(tmp_path / "a", uniform_images([30]), prefix="x")
    write_pngs(tmp_path / "b", uniform_images([200]), prefix="x")
    (tmp_path / "labels.json").write_text(json.dumps({"x-0.png": 1}))
    result = cli("evaluate", "--predict", f"{ORACLE}:bright", "--images", f"{tmp_path}/*/*.png", "--labels",
                 tmp_path / "labels.json")
    assert result.returncode == 2 and "by base name, but 2 images are called that" in result.stderr


def test_a_models_own_value_error_keeps_its_traceback_and_names_the_image(tmp_path):
    write_pngs(tmp_path / "imgs", uniform_images([40]))
    result = cli(*search_args(tmp_path / "imgs", predict="misaligned"))
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: shapes (3,) and (4,) not aligned" in result.stderr
    assert "predict failed on a batch of 8 from image" in result.stderr and "img-0.png" in result.stderr
    assert "error: shapes" not in result.stderr  # not dressed up as a bad argument


def test_the_models_error_and_too_large_images_with_on_error_skip(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images([20, 70]) + uniform_images([100], size=(40, 40)))
    common = search_args(tmp_path / "imgs", predict="bright_refuses_dark")
    raised = cli(*common)
    assert raised.returncode == 1 and "RuntimeError: too dark to see" in raised.stderr and files[0] in raised.stderr
    skipped = cli(*common[:-2], "--cache", tmp_path / "skip.json", "--on-error", "skip", "--max-image-pixels",
                  24 * 24)
    assert skipped.returncode == 0, skipped.stderr
    reasons = augment.load_analysis(tmp_path / "skip.json").skipped
    assert [item["file"] for item in reasons] == [files[0], files[2]]
    assert "too dark to see" in reasons[0]["reason"]
    assert "40x40 = 1,600 pixels, more than max_image_pixels=576" in reasons[1]["reason"]


@pytest.fixture(scope="module")
def searched_once(tmp_path_factory):
    """A folder with one image, a finished analysis, a file and an empty folder."""
    folder = tmp_path_factory.mktemp("bad-arguments")
    write_pngs(folder / "imgs", uniform_images([40]))
    (folder / "a-file").write_text("not a folder")
    (folder / "folder").mkdir()
    assert cli(*search_args(folder / "imgs")).returncode == 0
    return folder


@pytest.mark.parametrize(("case", "expected"), [
    ("cache-is-a-folder", "is a folder; give a file name"),
    ("html-dir-is-a-file", "html_dir"),
    ("output-dir-is-a-file", "output_dir"),
    ("image-is-a-folder", "is a folder; give a pattern such as"),
    ("no-such-pattern", "matches no file"),
    ("no-such-module", "cannot import 'no_such_module'"),
    ("unknown-augmentation", "unknown augmentation 'Blurr'"),
    ("tiny-step", "step_size_percent must divide 1 into whole steps"),
    ("target-layer-alone", "--target-layer needs --torch-model"),
])
def test_bad_arguments_are_one_error_line_naming_the_path_or_value(searched_once, case, expected):
    tmp_path = searched_once
    search = search_args(tmp_path / "imgs")
    args = {
        "cache-is-a-folder": [*search[:-2], "--cache", tmp_path / "folder"],
        "html-dir-is-a-file": ["report", "--cache", tmp_path / "analysis.json", "--html-dir", tmp_path / "a-file"],
        "output-dir-is-a-file": ["synthesize", "--cache", tmp_path / "analysis.json", "--images",
                                 f"{tmp_path}/imgs/*.png", "--output-dir", tmp_path / "a-file"],
        "image-is-a-folder": ["evaluate", "--predict", f"{ORACLE}:bright", "--images", tmp_path / "folder",
                              "--labels", tmp_path / "a-file"],
        "no-such-pattern": ["search", "--predict", f"{ORACLE}:bright", "--images", f"{tmp_path}/none*.png"],
        "no-such-module": ["search", "--predict", "no_such_module:f", "--images", f"{tmp_path}/imgs/*.png"],
        "unknown-augmentation": [*search[:search.index("--augmentations") + 1], "Blurr"],
        "tiny-step": [*search, "--step", "1e-9"],
        "target-layer-alone": ["report", "--cache", tmp_path / "analysis.json", "--target-layer", "features.6"],
    }[case]
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_literal_names_with_brackets_and_steps_given_as_percents(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(uniform_images([100])[0]).save(tmp_path / "imgs" / "a[1].png")
    result = cli("search", "--predict", f"{ORACLE}:bright", "--batch-size", "8", "--images",
                 tmp_path / "imgs" / "a[1].png", "--augmentations", "Brighten", "--step", "1", "--cache",
                 tmp_path / "analysis.json")
    assert result.returncode == 0, result.stderr
    analysis = augment.load_analysis(tmp_path / "analysis.json")
    assert analysis.settings["step_size"] == 0.01 and len(analysis.intensities) == 101  # "1" means 1 %
    assert analysis.curves["Brighten"].first_failure_intensities == [0.11]  # 100 + 0.11 * 255 > 127


def test_a_full_disk_during_a_search_is_one_error_naming_the_analysis_file(tmp_path):
    import resource

    write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))

    def small_files():  # what a full disk looks like to a writer: EFBIG past 1 KB (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    result = cli(*search_args(tmp_path / "imgs", "--step", "0.05", "--augmentations", "Brighten", "Darken",
                              "Hue"), preexec_fn=small_files)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    # the checkpoint's first file is its shard of rows, beside analysis.json
    assert result.stderr.strip().splitlines()[-1] == (f"error: cannot write {tmp_path / 'analysis.json.rows'}"
                                                      f"/rows-000001.npz: File too large")
    assert not list(tmp_path.glob(".augment-tmp-*")) and not list(tmp_path.glob("analysis.json.rows/.augment-tmp-*"))


def test_a_cache_in_a_folder_it_cannot_write_is_refused_before_any_prediction(tmp_path):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70]))
    args = search_args(tmp_path / "imgs", predict="slow_bright", cache=tmp_path / "cache" / "analysis.json")
    assert cli(*args).returncode == 0
    (tmp_path / "cache" / "analysis.json").unlink()
    result = run_read_only(tmp_path / "cache", args)
    assert result.returncode == 2 and "cannot write the analysis file" in result.stderr, result.stderr
    assert "PREDICT" not in result.stdout  # refused before the first prediction


def test_ctrl_c_during_synthesize_prints_the_command_that_finishes_the_job(tmp_path):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))
    assert cli(*search_args(tmp_path / "imgs")).returncode == 0
    args = ["synthesize", "--predict", f"{ORACLE}:slow_bright", "--batch-size", "4", "--cache",
            tmp_path / "analysis.json", "--images", f"{tmp_path}/imgs/*.png", "--count", "24", "--max-diff-error",
            "0.9", "--output-dir", tmp_path / "out", "--min-augmentations", "1", "--max-augmentations", "1"]
    assert cli(*args[:args.index("--count") + 1], "5", *args[args.index("--count") + 2:]).returncode == 0
    release = tmp_path / "signal-sent"
    child = subprocess.Popen([sys.executable, str(ROOT / "augment.py"), *map(str, args)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "ORACLE_BLOCK_AFTER": "3", "ORACLE_RELEASE": str(release)})
    wait_for(child, "PREDICT", 3)  # the 3rd batch waits until the signal is sent: the job cannot finish first
    child.send_signal(signal.SIGINT)
    release.touch()
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    command = err.strip().splitlines()[-1].strip()
    assert command.startswith("python augment.py synthesize") and "--count 29" in command and "--total" in command
    finish = cli(*shlex.split(command)[2:])
    assert finish.returncode == 0, finish.stderr
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 29  # 5 before and the 24 asked for; never 5 + 24 + 24


def test_the_catalogue_and_help_print(tmp_path):
    table = cli("catalogue")
    assert table.returncode == 0 and table.stdout.count("\n| ") == len(augment.ALL_AUGMENTATIONS) + len(
        augment.EXTENDED_AUGMENTATIONS)  # the extended set is listed too (registered ones with --augmentations-from)
    assert cli("--help").returncode == 0


def test_render_workers_and_user_modules_get_this_augment_py_whatever_the_folder_holds(tmp_path):
    (tmp_path / "augment.py").write_text("raise ImportError('a decoy augment.py in the working folder')\n")
    (tmp_path / "model.py").write_text("import augment\nimport numpy as np\n\nCATALOGUE = augment.CATALOGUE\n\n\n"
                                       "def predict(images):\n"
                                       "    return [int(np.asarray(i).mean() > 127) for i in images]\n")
    write_pngs(tmp_path / "imgs", uniform_images([40, 90, 120]))
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "search", "--predict", "model.py:predict",
                             "--batch-size", "8", "--images", "imgs/*.png", "--augmentations", "Brighten", "Darken",
                             "--step", "0.1", "--cache", "a.json", "--workers", "2"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert augment.load_analysis(tmp_path / "a.json").curves["Brighten"].first_failure_intensities == [0.4, 0.2, 0.1]


def test_an_empty_cache_path_is_refused_before_any_prediction_and_writes_nothing(tmp_path):
    write_pngs(tmp_path / "work" / "imgs", uniform_images([40, 70]))
    before = sorted(os.listdir(tmp_path))
    result = cli("search", "--predict", f"{ROOT / ORACLE}:slow_bright", "--images", "imgs/*.png", "--augmentations",
                 "Brighten", "--cache", "", cwd=tmp_path / "work")
    assert result.returncode == 2 and "analytics_cache '' names no file" in result.stderr, result.stderr
    assert "PREDICT" not in result.stdout
    assert sorted(os.listdir(tmp_path)) == before and sorted(os.listdir(tmp_path / "work")) == ["imgs"]
    with pytest.raises(augment.AugmentError, match="names no file"):
        augment.ImageAugmenter(lambda images: [0] * len(images), progress=False).search_randomization_boundaries(
            [str(tmp_path / "work" / "imgs" / "img-0.png")], analytics_cache="")


def run_read_only(folder, args) -> subprocess.CompletedProcess:
    """The command with ``folder`` mounted read-only (root writes anywhere: a private mount namespace)."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            return cli(*args)
        finally:
            os.chmod(folder, 0o755)
    mount = f"mount --bind -o ro {folder} {folder}"
    command = shlex.join([sys.executable, str(ROOT / "augment.py"), *map(str, args)])
    result = subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && exec {command}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    if "mount:" in result.stderr and "error:" not in result.stderr:  # the mount itself failed
        pytest.skip(f"no read-only bind mount here: {result.stderr.strip()}")
    return result


def test_a_complete_cache_in_a_read_only_folder_is_used_as_it_is(tmp_path):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70]))
    (tmp_path / "imgs" / "img-9.png").write_bytes(b"not a png")  # skipped by every run, read-only or not
    args = search_args(tmp_path / "imgs", predict="slow_bright", cache=tmp_path / "cache" / "analysis.json")
    assert cli(*args).returncode == 0
    before = sorted(os.listdir(tmp_path / "cache"))
    result = run_read_only(tmp_path / "cache", args)
    assert result.returncode == 0, result.stderr
    assert "PREDICT" not in result.stdout and "Brighten" in result.stdout
    assert sorted(os.listdir(tmp_path / "cache")) == before
    at = args.index("Brighten") + 1
    more = run_read_only(tmp_path / "cache", [*args[:at], "Darken", *args[at:]])
    assert more.returncode == 2 and "cannot write the analysis file" in more.stderr and "it lacks Darken" in more.stderr


def test_an_unreachable_dask_scheduler_is_one_error_line_naming_it(tmp_path):
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_pngs(tmp_path / "imgs", uniform_images([40, 70]))
    result = cli(*search_args(tmp_path / "imgs"), "--dask", f"tcp://127.0.0.1:{port}", "--dask-timeout", "2")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"error: cannot connect to the Dask scheduler at tcp://127.0.0.1:{port} within 2 s" in result.stderr


@pytest.mark.parametrize("cache", ["runs/", "./ ", "  "])
def test_a_cache_path_that_names_no_file_is_refused_and_writes_nothing(tmp_path, cache):
    write_pngs(tmp_path / "work" / "imgs", uniform_images([40, 70]))
    result = cli("search", "--predict", f"{ROOT / ORACLE}:slow_bright", "--images", "imgs/*.png", "--augmentations",
                 "Brighten", "--cache", cache, cwd=tmp_path / "work")
    assert result.returncode == 2 and "names no file" in result.stderr and "PREDICT" not in result.stdout
    assert sorted(os.listdir(tmp_path / "work")) == ["imgs"] and sorted(os.listdir(tmp_path)) == ["work"]


def test_saving_an_analysis_or_a_policy_to_no_file_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70]))
    augmenter = augment.ImageAugmenter(lambda images: [0] * len(images), augmentations=["Brighten"], progress=False)
    analysis = augmenter.search_randomization_boundaries(sorted(map(str, (tmp_path / "imgs").iterdir())), None, 0.5,
                                                         None)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for path in ("", "  ", "sub/", str(tmp_path / "imgs")):
        with pytest.raises(augment.AugmentError, match="names no file|is a folder"):
            analysis.save(path)
    with pytest.raises(augment.AugmentError, match="names no file"):
        augment.SamplingPolicy({"Brighten": 0.3}).save("")
    assert os.listdir(tmp_path / "work") == [] and sorted(os.listdir(tmp_path)) == ["imgs", "work"]


def test_a_reader_that_stops_early_gets_no_traceback():
    child = subprocess.Popen([sys.executable, str(ROOT / "augment.py"), "catalogue"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=ROOT)
    child.stdout.close()  # `| head -0`: the reader is gone before the command prints (it takes a second to start)
    _, err = child.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err


@pytest.mark.parametrize("timeout", ["-1", "nan", "1e9"])
def test_a_dask_timeout_out_of_range_is_named(tmp_path, timeout):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70]))
    result = cli(*search_args(tmp_path / "imgs"), "--dask", "tcp://127.0.0.1:9", "--dask-timeout", timeout)
    assert result.returncode == 2 and "--dask-timeout must be a number of seconds in (0, 3600]" in result.stderr
