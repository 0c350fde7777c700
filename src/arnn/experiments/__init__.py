"""Small standalone experiments, each runnable as `python -m arnn.experiments.<name>`."""
