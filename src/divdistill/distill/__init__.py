"""Distilled students for the tiny world: PD, LCM, DMD2, with DDIL's training distribution and reflected x̂0."""
from .adversarial import AdversarialConfig, train_adversarial
from .ddil import DDILConfig, ReplayBuffer, choose_sources, draw_batch, refresh_buffer, rollout
from .dmd2 import DMD2Config, train_dmd2
from .lcm import LCMConfig, train_lcm
from .pd import PDConfig, train_pd, trailing_grid
from .recipes import RECIPES, recipe, train

__all__ = ["AdversarialConfig", "train_adversarial", "DDILConfig", "ReplayBuffer", "choose_sources", "draw_batch", "refresh_buffer", "rollout", "DMD2Config",
           "train_dmd2", "LCMConfig", "train_lcm", "PDConfig", "train_pd", "trailing_grid", "RECIPES", "recipe",
           "train"]
