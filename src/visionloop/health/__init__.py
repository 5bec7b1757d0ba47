"""Dataset health: statistics, malformed annotations, duplicates and leakage; fixes that can be undone.

    report = check(store)                  # HealthReport, .to_json()
    plan = fix(store, dry_run=True)        # FixReport: what would change
    fix(store); undo(store, batch_id)      # a batch of kind "fix", undone exactly
"""

from visionloop.health.check import check
from visionloop.health.fix import FixReport, fix, undo
from visionloop.health.result import ClassBalance, DuplicatePair, Finding, HealthReport, Severity

__all__ = ["ClassBalance", "DuplicatePair", "Finding", "FixReport", "HealthReport", "Severity", "check", "fix",
           "undo"]
