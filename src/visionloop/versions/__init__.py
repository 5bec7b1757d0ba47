"""Dataset versions: a recipe (split, preprocessing, augmentation, seed) applied to a frozen selection.

    from visionloop.versions import create_version, export_version
    info = create_version(store, "recipe.yaml", workers=2)
    export_version(store, info.name, "out", format="yolo")

Modules: `recipe` (the schema), `choices` (its enums), `affine` + `kernels`
(exact geometry per type), `frame` + `ops` + `pixels` (the ops, usable at
train time through `ops.Compose`), `pipeline` (one image → its outputs),
`selection` (which images, which split), `generate` (the pool, resumable),
`api` (list, show, export), `diff`, `preview`, `dataset` (VersionDataset).
"""

from visionloop.versions.api import export_version, list_versions, show_version, version_samples
from visionloop.versions.dataset import VersionDataset
from visionloop.versions.diff import VersionDiff, diff_versions
from visionloop.versions.generate import create_version
from visionloop.versions.info import VersionInfo
from visionloop.versions.preview import Preview, preview_version
from visionloop.versions.recipe import Recipe, RecipeError, load_recipe

__all__ = [
    "Preview", "Recipe", "RecipeError", "VersionDataset", "VersionDiff", "VersionInfo", "create_version",
    "diff_versions", "export_version", "list_versions", "load_recipe", "preview_version", "show_version",
    "version_samples",
]
