"""Whether W&B runs online: only when the user has configured W&B, so no account is ever needed."""

import netrc
import os
from urllib.parse import urlparse

from omegaconf import OmegaConf


def wandb_configured() -> bool:
    """True when an API key is set in the environment or stored by `wandb login`, and W&B is not forced off."""
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled"):
        return False
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def register_resolver() -> None:
    """`${wandb_offline:}` in configs resolves to the opposite of `wandb_configured()`."""
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", lambda: not wandb_configured())
