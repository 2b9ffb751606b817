"""The DT chapters (DT visualization, early steps; paper Figs. 3–5): x̂0 trajectories, distance curves, commit points."""
