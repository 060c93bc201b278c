"""The full set of per-photo unknowns (model parameters + head pose, camera, lighting, colour) and how they
turn into a render. Shared by fitting and the regressor."""

from f2p.scene.compose import SceneOutput, render_scene
from f2p.scene.params import SCENE_GROUPS, SceneSpec

__all__ = ["SCENE_GROUPS", "SceneOutput", "SceneSpec", "render_scene"]
