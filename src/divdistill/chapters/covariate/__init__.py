"""The covariate-shift chapter (DDIL Sec. 5.2, Table 9): mixed rollouts, switches, the students' input shift."""
