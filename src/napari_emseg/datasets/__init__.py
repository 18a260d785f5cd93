"""Data the project makes itself: the synthetic EM neuropil generator (sample data, tests,
propagation pretraining)."""
