"""The file formats: pydantic models of analysis.json, manifests and policy files (file_schema)."""

from __future__ import annotations

import os
import types
from typing import Any

from .catalogue import _check_augmentation_name
from .helpers import AugmentError, _made_on_first_use


@_made_on_first_use()
def _formats() -> Any:
    """The pydantic models of the files augment.py writes (a namespace: .AnalysisDocument,
    .AnalysisIndex, .ManifestLine, ...)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, model_validator

    SettingsEntry, ImageEntry, CurveEntry = _analysis_parts()

    class AnalysisDocument(BaseModel):
        """An analysis in one document (formats 1-3, and Analysis.to_json): settings, one record
        per image, per augmentation one row per image."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        format: Literal["augment.py analysis"]
        version: Literal[1, 2, 3]
        tool_version: str | None = None  # (format 4 files are AnalysisIndex)
        fingerprint: str
        settings: SettingsEntry
        images: list[ImageEntry]
        augmentations: dict[str, CurveEntry]

        @model_validator(mode="after")
        def rows_fit(self) -> AnalysisDocument:
            _check_rows(self)
            return self

    class Shard(BaseModel):
        model_config = ConfigDict(strict=True)
        file: str = Field(pattern=r"^rows-[0-9]{6,}\.npz$")
        bytes: int = Field(ge=0)
        images: int = Field(ge=0)
        uid: str  # also in the shard's meta: the file is the one listed, not another search's

    class Rows(BaseModel):
        model_config = ConfigDict(strict=True)
        folder: str
        shards: list[Shard]

    class Entry(BaseModel):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        definition: str
        rows_since: str | None = None  # the first listed shard holding this augmentation's rows
        summary: dict | None = None  # derived; recomputed from the rows when it lacks a field
        perceptual_strength: list[float] | None = None  # severity units per intensity (since 0.4.0)

    class AnalysisIndex(BaseModel):
        """analysis.json, format 4: settings, per augmentation its definition and summary, and the
        shard files of per-image rows in the folder beside it."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        format: Literal["augment.py analysis"]
        version: Literal[4]
        tool_version: str | None = None
        fingerprint: str
        settings: SettingsEntry
        images: int = Field(ge=0)
        augmentations: dict[str, Entry]
        rows: Rows

    return types.SimpleNamespace(AnalysisDocument=AnalysisDocument, AnalysisIndex=AnalysisIndex, ImageEntry=ImageEntry,
                                 ManifestLine=_manifest_model(), Policy=_policy_model())


def _analysis_parts() -> tuple[type, type, type]:
    """The models inside analysis.json: its settings, an image record, one augmentation's rows."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    strict = ConfigDict(strict=True, allow_inf_nan=False)
    Row = list[float | None] | None  # one image's diff errors per intensity; null: not (yet) measured

    class SettingsEntry(BaseModel):
        """How the search was made (extra keys are kept: later versions may add some)."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        intensities: list[float] = Field(min_length=2)
        failure_threshold: float = Field(gt=0, le=1)
        step_size: float
        seed: int
        model_id: str | None = None
        label_format: str | dict | None = None
        moved_references: bool = False
        rotate_method: str = "largest_box"
        strategy: str = "grid"
        grid_sample: list[int] | None = None
        severity_calibration: str | None = None  # the perceptual scale its strengths are in (since 0.4.0)
        severity_images: int | None = Field(None, ge=1)  # images the strengths were measured on (since 0.4.0)

        @field_validator("intensities")
        @classmethod
        def increasing(cls, intensities: list[float]) -> list[float]:
            if intensities != sorted(intensities) or not 0 <= intensities[0] <= intensities[-1] <= 1:
                raise ValueError("intensities must increase within [0, 1]")
            return intensities

    class ImageEntry(BaseModel):
        model_config = strict
        file: str
        label: Any = None
        output: str | None = None
        label_error: float | None = None
        error: str | None = None
        output_view: Any = None
        digest: str | None = None

    class CurveEntry(BaseModel):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")  # "summary" is derived
        definition: str
        diff_errors: list[Row]
        label_errors: list[Row] | None = None
        last_success_output: list[str | None]
        first_failure_output: list[str | None]
        last_success_view: list | None = None
        first_failure_view: list | None = None
        perceptual_strength: list[float] | None = None  # severity units per intensity (since 0.4.0)

    return SettingsEntry, ImageEntry, CurveEntry


def _check_rows(document: Any) -> None:
    """Every augmentation's rows: one per image, each as wide as the grid, values in [0, 1]."""
    count, width = len(document.images), len(document.settings.intensities)
    for name, curve in document.augmentations.items():
        _check_augmentation_name(name, "augmentation in the analysis")
        for field_name in ("diff_errors", "label_errors", "last_success_output", "first_failure_output",
                           "last_success_view", "first_failure_view"):
            values = getattr(curve, field_name)
            if values is not None and len(values) != count:
                raise ValueError(f"augmentations.{name}.{field_name} has {len(values)} entries for {count} images")
        for field_name in ("diff_errors", "label_errors"):
            for k, row in enumerate(getattr(curve, field_name) or []):
                if row is not None and (len(row) != width or any(v is not None and not 0 <= v <= 1 for v in row)):
                    raise ValueError(f"augmentations.{name}.{field_name}.{k} is not {width} values in [0, 1] or null")


def _manifest_model() -> type:
    from pydantic import BaseModel, ConfigDict, Field, model_validator

    strict = ConfigDict(strict=True, allow_inf_nan=False)

    class Step(BaseModel):
        model_config = strict
        name: str
        intensity: float

    class ManifestLine(BaseModel):
        """One line of manifest.jsonl: a synthetic image, what it was made from and how."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        index: int = Field(ge=0)
        file: str
        label: Any = None
        source_file: str
        source_label: Any = None
        augmentations: list[Step]
        seed: int
        realism: float
        predicted_diff_error: float | None = None

        @model_validator(mode="after")
        def names_stay_in_the_folder(self) -> ManifestLine:
            names = [self.file] + ([self.label] if isinstance(self.label, str) and self.label.endswith(".mask.png")
                                   else [])
            for name in names:
                if name != os.path.basename(name) or not name.startswith("synthetic-") or "\\" in name \
                        or "\x00" in name:
                    raise ValueError(f"file {name!r} is not a synthetic image name in this folder")
            return self

    return ManifestLine


def _policy_model() -> type:
    """A policy file: per augmentation its family, largest intensity and weight (unknown keys
    in an entry are refused: a typo there would silently change what training draws)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class PolicyEntry(BaseModel):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
        name: str
        family: str
        min_intensity: float = Field(0.0, ge=0, le=1)
        max_intensity: float = Field(ge=0, le=1)
        weight: float = Field(ge=0)

    class Policy(BaseModel):
        """A sampling policy file: what a training transform draws from, without the analysis."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        format: Literal["augment.py sampling policy"]
        version: int = Field(ge=1)
        catalogue_version: int = Field(ge=1)
        tool_version: str | None = None
        realism: float | None = None
        model_id: str | None = None
        severity_ceiling: float | None = Field(None, ge=0)  # since 0.4.0: limits bounded by perception
        min_augmentations: int = Field(ge=1)
        max_augmentations: int = Field(ge=1)
        augmentations: list[PolicyEntry] = Field(min_length=1)

    return Policy


def _validated(model: Any, data: Any, where: str) -> Any:
    """``data`` checked against a format; an AugmentError says where and which field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"]) or "the document"
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise AugmentError(f"{where} is damaged: {path}: {message}{more}") from None


def file_schema(kind: str = "analysis") -> dict:
    """The JSON Schema of ``analysis.json`` ("analysis"; its rows are in shard files, see the
    README), of one analysis as a single document ("analysis-document": Analysis.to_json and
    format 1-3 files), of a ``manifest.jsonl`` line ("manifest") or of a sampling policy file ("policy").

    >>> file_schema("manifest")["required"][:3]
    ['index', 'file', 'source_file']
    """
    models = {"analysis": _formats().AnalysisIndex, "analysis-document": _formats().AnalysisDocument,
              "manifest": _formats().ManifestLine, "policy": _formats().Policy}
    if kind not in models:
        raise AugmentError(f"kind must be one of {sorted(models)}, got {kind!r}")
    return models[kind].model_json_schema()
