"""``--log-dir`` / ``PLANNER_LOG_DIR``: the planner's log records, also in a file.

Every module logs under the ``sla_planner`` logger (``sla_planner.cycle``, ...); with a log
directory those records (INFO and up) are appended to ``<log_dir>/sla-planner.log`` as well as
going wherever the caller's logging sends them (Prefect's run logs, stderr).
"""

from __future__ import annotations

import logging
from pathlib import Path

from planner_core.config import ConfigError

LOGGER = "sla_planner"
LOG_FILE = "sla-planner.log"


def log_to_dir(log_dir: str | Path) -> Path:
    """Append the planner's log records to ``log_dir/sla-planner.log`` (created); returns the file.
    Calling it again for the same directory adds nothing."""
    directory = Path(log_dir).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = (directory / LOG_FILE).resolve()
        handler = logging.FileHandler(path, encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"log_dir (--log-dir): cannot write a log file in {str(directory)!r}: {reason}; "
            "give a writable directory"
        ) from None
    logger = logging.getLogger(LOGGER)
    if any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in logger.handlers):
        handler.close()
        return path
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return path
