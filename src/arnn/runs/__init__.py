"""Build and train: the config composed and built into objects, the training run, its checkpoints and loggers."""
