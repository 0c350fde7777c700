"""Third-party messages that say nothing about a run, each dropped by its exact text where it is emitted: Lightning's
advertisement for litlogger and its own use of a torch API torch now deprecates (printed at every fit and test)."""

import logging
import re
import warnings

LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"
LEAFSPEC_DEPRECATION = "`isinstance(treespec, LeafSpec)` is deprecated"


def _not_the_tip(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(LITLOGGER_TIP)


def quiet_third_party() -> None:
    """Install both filters (again: each is installed once)."""
    warnings.filterwarnings("ignore", message=re.escape(LEAFSPEC_DEPRECATION))
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if _not_the_tip not in rank_zero.filters:
        rank_zero.addFilter(_not_the_tip)
