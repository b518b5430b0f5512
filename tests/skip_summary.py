"""A pytest hook: ``-rs`` (in ``-ra``) prints one ``SKIPPED [N] reason`` line per distinct reason.

Without ../shared some 170 tests skip for the same reason; pytest would print a line per test location.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Dict

import pytest

PREFIX = "Skipped: "


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """Take ``s`` out of pytest's short summary, then list the skips grouped by reason after it."""
    reporter = terminalreporter
    wanted = "s" in reporter.reportchars
    reporter.reportchars = reporter.reportchars.replace("s", "")
    yield
    skipped = reporter.stats.get("skipped", [])
    if not wanted or not skipped:
        return
    counts: Counter = Counter()
    first: Dict[str, str] = {}
    for report in skipped:
        if isinstance(report.longrepr, tuple):
            path, line, reason = report.longrepr
            where = f"{os.path.relpath(path, reporter.config.rootpath)}:{line}"
        else:
            reason, where = str(report.longrepr), report.nodeid
        reason = reason[len(PREFIX):] if reason.startswith(PREFIX) else reason
        counts[reason] += 1
        first.setdefault(reason, where)
    reporter.write_sep("-", "skipped, one line per reason")
    for reason, count in counts.most_common():
        reporter.write_line(f"SKIPPED [{count}] {reason} (first at {first[reason]})")
