"""Classical image processing on numpy arrays (no torch): intensity normalisation, binning,
the ridge membrane filter and the seeded 2D watershed."""
