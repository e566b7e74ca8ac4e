"""Grad-CAM over one augmentation sweep (gradcam_frames, write_gradcam_gif) and captioned pictures."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .catalogue import _check_augmentation_name, augment_image
from .files import _write_atomic
from .helpers import AugmentError
from .images import load_image
from .probes import _grid

_CAM_METHODS = {
    "gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "gradcamplusplus": "GradCAMPlusPlus",
    "eigencam": "EigenCAM", "scorecam": "ScoreCAM", "layercam": "LayerCAM", "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM", "ablationcam": "AblationCAM", "eigengradcam": "EigenGradCAM",
}


def _cam_class(method: str):
    import pytorch_grad_cam

    key = str(method).lower().replace("-", "").replace("_", "")
    if key not in _CAM_METHODS:
        raise AugmentError(f"unknown cam_method {method!r}; choose one of {sorted(set(_CAM_METHODS.values()))}")
    return getattr(pytorch_grad_cam, _CAM_METHODS[key])


def _default_preprocess(images: Sequence[np.ndarray]):
    """(H, W, 3) uint8 images to a float (N, 3, H, W) tensor in [0, 1]."""
    import torch

    batch = np.stack(images).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


@dataclass
class CamFrame:
    """One step of an augmentation sweep seen through the model.

    ``image`` is the augmented (H, W, 3) uint8 image, ``heatmap`` the (H, W) float
    localization map in [0, 1] (None without a torch model), ``overlay`` the heatmap
    blended on the image, ``predicted`` the model's top class and ``confidence`` its
    softmax probability.

    >>> [(f.intensity, f.predicted) for f in gradcam_frames(image, "Hue", cnn, [cnn.features[6]])][:2]  # doctest: +SKIP
    [(0.0, 7), (0.05, 7)]
    """

    intensity: float
    image: np.ndarray = field(repr=False)
    heatmap: np.ndarray | None = field(default=None, repr=False)
    overlay: np.ndarray | None = field(default=None, repr=False)
    predicted: int | None = None
    confidence: float | None = None


def gradcam_frames(
    image: np.ndarray | str,
    augmentation: str,
    model: Any,
    target_layers: Sequence[Any],
    *,
    intensities: Sequence[float] | None = None,
    method: str = "GradCAM",
    preprocess: Callable | None = None,
    seed: int = 0,
) -> list[CamFrame]:
    """Grad-CAM (or another grad-cam method) at every step of one augmentation sweep.

    All frames go through the model in one batch. ``preprocess(list of (H, W, 3) uint8)
    -> (N, C, H, W) tensor`` defaults to scaling to [0, 1]. The target class of each
    frame is the model's own top class on that frame.

    >>> frames = gradcam_frames("digit.png", "SafeRotate", cnn, [cnn.features[6]])  # doctest: +SKIP
    >>> [round(f.confidence, 2) for f in frames][:3]                                 # doctest: +SKIP
    [0.99, 0.98, 0.95]
    """
    import torch
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _check_augmentation_name(augmentation)
    source = load_image(image)
    grid = list(intensities) if intensities is not None else _grid(0.05)
    augmented = [augment_image(source, augmentation, t, seed) for t in grid]
    preprocess = preprocess or _default_preprocess
    batch = preprocess(augmented)
    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(batch), dim=1).cpu().numpy()
    predicted = probabilities.argmax(axis=1)
    with _cam_class(method)(model=model, target_layers=list(target_layers)) as cam:
        heatmaps = cam(input_tensor=batch, targets=[ClassifierOutputTarget(int(k)) for k in predicted])
    frames = []
    for t, img, heat, k in zip(grid, augmented, heatmaps, predicted):
        overlay = show_cam_on_image(img.astype(np.float32) / 255.0, heat, use_rgb=True, image_weight=0.6)
        frames.append(CamFrame(t, img, heat, overlay, int(k), float(probabilities[len(frames), k])))
    return frames


def write_gradcam_gif(path: str | os.PathLike, image: np.ndarray | str, augmentation: str, model: Any,
                      target_layers: Sequence[Any], *, duration: float = 0.15, **options: Any) -> str:
    """Write the Grad-CAM sweep of one image and augmentation as a captioned GIF (imageio).

    >>> write_gradcam_gif("rotate.gif", "digit.png", "SafeRotate", cnn, [cnn.features[6]])  # doctest: +SKIP
    'rotate.gif'
    """
    frames = gradcam_frames(image, augmentation, model, target_layers, **options)
    pictures = [_captioned(f.overlay, f"{augmentation} {f.intensity:.2f}: {f.predicted} ({f.confidence:.2f})")
                for f in frames]
    return _write_gif(path, pictures, duration)


def _write_gif(path: str | os.PathLike, pictures: Sequence[np.ndarray], duration: float,
               durable: bool = True) -> str:
    import imageio.v3 as iio

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    encoded = iio.imwrite("<bytes>", np.stack(pictures), extension=".gif", duration=int(duration * 1000), loop=0)
    return _write_atomic(path, encoded, durable=durable)


def _display_size(image: np.ndarray, short_side: int = 144, long_cap: int = 288) -> np.ndarray:
    """Scale for the page: small images up (nearest, pixels stay crisp), large ones down."""
    import cv2

    height, width = image.shape[:2]
    scale = max(short_side / min(height, width), 1.0) if min(height, width) < short_side else 1.0
    scale = min(scale, long_cap / max(height, width)) if max(height, width) * scale > long_cap else scale
    if scale == 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)


def _captioned(image: np.ndarray, caption: str) -> np.ndarray:
    """The image (scaled for display) over a white strip with an ASCII caption."""
    import cv2

    picture = _display_size(image)
    strip = np.full((22, picture.shape[1], 3), 255, np.uint8)
    text = caption.encode("ascii", "replace").decode()
    scale = 0.4
    while cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > picture.shape[1] - 4 and len(text) > 4:
        text = text[:-2]
    cv2.putText(strip, text, (2, 15), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([picture, strip])
