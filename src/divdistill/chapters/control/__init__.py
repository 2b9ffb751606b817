"""The control-transfer chapter (paper Sec. 6, Table 1, Fig. 2): LoRA readouts, slider sweeps, late start."""
