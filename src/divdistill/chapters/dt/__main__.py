"""`python -m divdistill.chapters.dt`: the tiny world's committed Fig. 5 curves (see measure.main)."""
import os

import torch

from .measure import main

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
r = main()
raise SystemExit(0 if isinstance(r, str) else r)
