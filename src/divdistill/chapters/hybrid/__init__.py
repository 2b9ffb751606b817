"""The hybrid chapter (paper Sec. 5, Tables 2–4, Fig. 7): plans, runs, paired bootstrap statistics, report."""
