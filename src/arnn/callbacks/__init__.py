"""Lightning callbacks of a run: the non-finite guard, the learning check, the config written into checkpoints,
per-epoch reseeding for exact resumes, and the Jacobian spectrum tracker."""
