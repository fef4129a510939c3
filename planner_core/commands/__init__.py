"""One module per `sla-planner` subcommand (see :mod:`planner_core.cli`)."""


class UsageError(Exception):
    """Bad input given on the command line; printed without a traceback, exit code 2.

    It lives here, not in :mod:`planner_core.cli`: under ``python -m planner_core.cli`` that
    module runs as ``__main__``, and a class defined there would be a second, different class
    from the one the commands raise."""
