"""augment.py: find where an image model breaks, then synthesize data up to that edge.

Bring any vision model as a Python ``predict`` function and a set of training
images. augment.py sweeps 24 augmentations (brightness, hue, blur, rotation,
crops, noise, ...) over intensities from 0 to 1, measures at which intensity the
model's output changes, caches that in ``analysis.json``, renders an offline
HTML report, synthesizes data sets whose strength is set by one ``realism``
knob, and evaluates models on them.

Public API
----------
ImageAugmenter(my_predict=None, diff_error=None, augmentations=ALL_AUGMENTATIONS,
               label_format=None, *, seed=0, batch_size=None, predict_input="auto",
               failure_threshold=0.5, on_error="raise", predict_factory=None,
               max_image_pixels=MAX_IMAGE_PIXELS, model_id=None, rotate_method="largest_box",
               describe=None, group_by=None, perceptual_ceiling=False, ...)
    .search_randomization_boundaries(images, labels=None, step_size_percent=0.05,
                                     analytics_cache="analysis.json", *, strategy="auto",
                                     grid_sample=None, num_workers=None, executor=None,
                                     rows_in_memory=None)
    .render_boundaries(html_dir="analytics", ...)
    .synthesize_more(organic_img_filenames, organic_labels=None, realism=0.5, ...)
    .evaluate(img_filenames, img_labels)
    .intensity_limits(realism) / .sampling_policy(realism) -> SamplingPolicy (.save(path), .load(path))
    .transform(realism, seed=None, p=1.0) -> RealismTransform   online, for training pipelines
    .set_augmentation_realism(name, realism) / .set_augmentation_weight(name, weight)
    .load_analysis(path)
    .set_augmentation_intensity(names, multiplier, min, max) / .get_synthesized_summary(output_dir)
    (ml-infinite-image-augment's README spellings searchRandomizationBoundries, renderBoundries and
    synthesizeMore, and its code's search_randomization_boundries and render_boundries, are aliases)
RealismTransform(policy_or_path, label_format=None, seed=None)   t(image) or t(image=..., bboxes=...)
register_augmentation(name, build | function=..., family=..., ...) -> Augmentation   your own, beside the 24
augment_image(image, name, intensity, seed=0) -> (H, W, 3) uint8
augment_with_labels(image, steps, labels, label_format, seed=0) -> (image, labels moved)
augmentation_seed(image, name, seed=0)   the seed of one image's random draws
load_image(source) -> (H, W, 3) uint8
load_analysis(path) -> Analysis (.curves[name] -> AugmentationCurve, .summarize() -> CurveSummary)
read_manifest(path) -> [SyntheticImage]
outputs_equal(output, reference) / default_diff_error(output, reference)
format_summary(analysis), catalogue_markdown(), file_schema("analysis" | "manifest" | "policy")
gradcam_frames(...) -> [CamFrame] / write_gradcam_gif(...)   Grad-CAM over one sweep
compare({name: analysis or path}, html_dir=None) -> Comparison (.shifts -> [AugmentationShift], .format())
realism_max_intensity(realism, onset, failure), TemplateMatcher, AugmentError
perceptual_distance(original, augmented), distance_to_severity(distance) -> ImageNet-C severity units,
perceptual_strength(images, name, intensities, seeds), SEVERITY_DISTANCES   one scale for every augmentation
realism_severity_ceiling(realism) -> 3 - 2 x realism   ImageAugmenter(..., perceptual_ceiling=True) bounds realism by it
CATALOGUE (name -> Augmentation), ALL_AUGMENTATIONS, EXTENDED_AUGMENTATIONS (opt-in), COLOR_AUGMENTATIONS,
DISTORTION_AUGMENTATIONS, PIXEL_DROPOUT_AUGMENTATIONS, MAX_IMAGE_PIXELS
clear_caches() / cache_info(), CACHE_CEILING_BYTES   every cache this process keeps, and their bound
main(argv=None)                                 the command line (python augment.py -h)

Contents (one module of src/augment/ each, in this order; generated)
--------

Quickstart
----------
>>> from augment import ImageAugmenter
>>> def predict(images):                      # a list of (H, W, 3) uint8 arrays
...     return [int(img.mean() > 127) for img in images]
>>> augmenter = ImageAugmenter(predict, batch_size=64, seed=0)
>>> analysis = augmenter.search_randomization_boundaries(["a.png", "b.png"])  # doctest: +SKIP
>>> analysis.curves["Brighten"].intensity_at_share(0.5)                        # doctest: +SKIP
0.35
>>> augmenter.render_boundaries("analytics")                                  # doctest: +SKIP
>>> files, labels = augmenter.synthesize_more(["a.png", "b.png"], realism=0.5)  # doctest: +SKIP
>>> augmenter.evaluate(files, labels)["accuracy"]                             # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.4.0"  # 0.4: perceptual strengths (severity units); strategy "auto"; faster Superpixels, elastic

__all__ = [
    "ALL_AUGMENTATIONS",
    "CACHE_CEILING_BYTES",
    "CATALOGUE",
    "COLOR_AUGMENTATIONS",
    "DISTORTION_AUGMENTATIONS",
    "EXTENDED_AUGMENTATIONS",
    "MAX_IMAGE_PIXELS",
    "PIXEL_DROPOUT_AUGMENTATIONS",
    "SEVERITY_DISTANCES",
    "Analysis",
    "AugmentError",
    "Augmentation",
    "AugmentationCurve",
    "AugmentationShift",
    "CamFrame",
    "Comparison",
    "CurveSummary",
    "ImageAugmenter",
    "ImageRecord",
    "RealismTransform",
    "SamplingPolicy",
    "SyntheticImage",
    "TemplateMatcher",
    "augment_image",
    "augment_with_labels",
    "augmentation_seed",
    "cache_info",
    "catalogue_markdown",
    "clear_caches",
    "compare",
    "default_diff_error",
    "distance_to_severity",
    "file_schema",
    "format_summary",
    "gradcam_frames",
    "load_analysis",
    "load_image",
    "main",
    "outputs_equal",
    "perceptual_distance",
    "perceptual_strength",
    "read_manifest",
    "realism_max_intensity",
    "realism_severity_ceiling",
    "register_augmentation",
    "write_gradcam_gif",
]

from .analysis import Analysis, AugmentationCurve, ImageRecord, load_analysis
from .augmenter import ImageAugmenter
from .catalogue import CATALOGUE, Augmentation, augment_image, augmentation_seed
from .cli import catalogue_markdown, format_summary, main
from .compare import AugmentationShift, Comparison, compare
from .custom import register_augmentation
from .formats import file_schema
from .gradcam import CamFrame, gradcam_frames, write_gradcam_gif
from .helpers import (
    ALL_AUGMENTATIONS,
    CACHE_CEILING_BYTES,
    COLOR_AUGMENTATIONS,
    DISTORTION_AUGMENTATIONS,
    EXTENDED_AUGMENTATIONS,
    PIXEL_DROPOUT_AUGMENTATIONS,
    AugmentError,
    _public_class,
    cache_info,
    clear_caches,
    outputs_equal,
)
from .images import MAX_IMAGE_PIXELS, TemplateMatcher, default_diff_error, load_image
from .labels import augment_with_labels
from .perceptual import (
    SEVERITY_DISTANCES,
    distance_to_severity,
    perceptual_distance,
    perceptual_strength,
    realism_severity_ceiling,
)
from .policy import SamplingPolicy, realism_max_intensity
from .stats import CurveSummary
from .synthesis import SyntheticImage, read_manifest

# Test hooks: the only private names tests/ may use (tests/test_layering.py checks), each for a
# white-box check of one module that no public call can make, or to inject a fault. Anything else
# private may change without notice.
_TEST_HOOKS = {
    # catalogue.py and fastpaths.py: fast paths checked pixel for pixel against albumentations itself
    "_transform": "the built albumentations transform of one (augmentation, intensity, size)",
    "_apply_augmentation": "the search's render path (lookup tables, seed-free skips)",
    "_fast_transform_classes": "the fast subclasses, to compare with their albumentations parents",
    "_POINTWISE": "augmentations rendered as lookup tables", "_SEED_FREE": "augmentations that draw nothing",
    "_superpixel_segments": "the cached SLIC segmentation", "_disk_kernel": "DefocusBlur's disk kernel",
    "_BoundedCache": "the array cache class (eviction, threads)",
    # custom.py: registered augmentations in worker threads and processes
    "_adopt": "what a worker does with a job's registered augmentations", "_thread_transform": "per-thread builds",
    # probes.py and search.py: probes against the full grid, shards in flight
    "_grid": "the intensity grid", "_guided_probe": "the guided probe", "_replay_probe": "a probe replayed on a row",
    "_shards_in_flight": "how many shards an executor gets at once",
    # rows.py: the column store and shard files
    "_Column": "a row column", "_ShardColumns": "columns read from shard files",
    "_to_float32": "verdict-preserving rounding",
    # report.py: what the page draws
    "_OUTPUT_COLOUR": "an output's colour", "_REFERENCE_COLOUR": "the reference's colour",
    "_view_mask": "a stored mask view as a mask", "_class_table": "the per-class table",
    # files.py and synthesis.py: fault injection (tests/models/killable.py kills at each write)
    "_write_atomic": "the one atomic writer", "_write_temporary": "synthesis's temporary files",
    "_temporary_prefix": "temporary file names", "_SyntheticFolder": "the locked output folder",
    "_lock_for_file": "the job lock of an analysis file",
}

if TYPE_CHECKING:
    from .transform import RealismTransform


def __getattr__(name: str) -> type:
    # PEP 562: RealismTransform is made on first use (it subclasses albumentations' BaseCompose)
    return _public_class(name, __name__)
