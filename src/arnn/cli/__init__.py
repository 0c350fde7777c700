"""Before Hydra starts a job: the command-line check, `resume=true`, and the config schema."""
