"""Checkpoints that carry their run's resolved config, so a model can be rebuilt from the file alone."""

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io import TorchCheckpointIO
from omegaconf import OmegaConf

from arnn.errors import UserError
from arnn.runs.build import build_module

CONFIG_KEY = "arnn_config"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
"""Where a run keeps the end of its latest epoch (`resume=true` continues from it)."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path` (weights-only loading, CPU), checked to be a checkpoint that carries its run config."""
    fix = "pass a .ckpt file written by arnn"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = "not a checkpoint, or it holds objects that weights-only loading refuses"
        raise UserError(f"cannot read checkpoint {path}: {reason}; {fix}") from error
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise UserError(f"cannot read checkpoint {path}: {error.strerror}; {fix}") from error
    except Exception as error:  # torch.load fails on a damaged file in many ways (OSError, RuntimeError, IndexError…)
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        reason = f"the file is truncated or corrupt ({detail})"
        raise UserError(f"cannot read checkpoint {path}: {reason}; {fix}, e.g. an earlier epoch's") from error
    if not isinstance(checkpoint, dict):
        kind = type(checkpoint).__name__
        raise UserError(f"cannot read checkpoint {path}: it holds an object of type {kind}, not a checkpoint; {fix}")
    if CONFIG_KEY not in checkpoint:
        raise UserError(f"checkpoint {path} has no {CONFIG_KEY}; it was not written by arnn's train")
    return checkpoint


def module_from_checkpoint(checkpoint: dict[str, Any]) -> pl.LightningModule:
    """The trained LightningModule of a checkpoint read by `read_checkpoint`, in eval mode."""
    module = build_module(OmegaConf.create(checkpoint[CONFIG_KEY]))
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def load_model(path: str | Path) -> pl.LightningModule:
    """Rebuild the trained LightningModule stored at `path` (weights-only loading, CPU)."""
    return module_from_checkpoint(read_checkpoint(path))


def mismatch(checkpoint: dict[str, Any], module: pl.LightningModule) -> str | None:
    """What keeps `checkpoint`'s weights out of `module` (missing, unexpected or reshaped tensors), or None."""
    stored = checkpoint.get("state_dict", {})
    expected = module.state_dict()
    problems = [f"missing {name}" for name in expected if name not in stored]
    problems += [f"unexpected {name}" for name in stored if name not in expected]
    problems += [
        f"{name} is {tuple(stored[name].shape)}, the model's is {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in stored and stored[name].shape != tensor.shape
    ]
    if not problems:
        return None
    more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
    return ", ".join(problems[:3]) + more


def check_fits(path: str | Path, module: pl.LightningModule) -> dict[str, Any]:
    """The checkpoint at `path`, read as `read_checkpoint` does, after checking its weights fit `module`."""
    checkpoint = read_checkpoint(path)
    if problem := mismatch(checkpoint, module):
        model = checkpoint[CONFIG_KEY].get("model", {})
        written_by = ", ".join(f"{key}={value}" for key, value in model.items() if key in ("_target_", "hidden_size"))
        raise UserError(
            f"checkpoint {path} does not fit this model ({problem}); it was written by {written_by}: "
            "train with the same model settings, or drop ckpt_path / resume"
        )
    if broken := [name for name, tensor in checkpoint["state_dict"].items() if not tensor.isfinite().all()]:
        raise UserError(
            f"checkpoint {path} holds non-finite weights ({', '.join(broken[:3])}); it was saved after training "
            "diverged: start from an earlier epoch's checkpoint, or drop ckpt_path / resume"
        )
    return checkpoint


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files `AtomicCheckpointIO` leaves in `directory` when a process is killed mid-write (their
    writer's pid is no longer running); returns the files removed."""
    removed = []
    for path in Path(directory).glob(".*.ckpt.*.tmp"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target, flushed to disk, then renamed over it, so a kill
    mid-write leaves the previous file intact; read back with weights-only loading.

    (Lightning's own save goes through an fsspec transaction whose temporary file lives in the system temp dir; the
    final move across file systems is a copy, which a kill can cut short.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def load_checkpoint(
        self, path: str | Path, map_location: Callable | None = None, weights_only: bool | None = True
    ) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=weights_only is not False)
