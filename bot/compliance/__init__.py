"""The compliance engine: who may be contacted, when, on which channel, and why not.

``check(subject, channel, at, history, state)`` is pure; its inputs and output
are the plain dataclasses of :mod:`bot.compliance.types`.  The rules and their
parameters live in :mod:`bot.compliance.config` (overridable from a YAML/TOML
file); docs/compliance.md describes every rule.  The database loader is
:mod:`bot.compliance.loader` (imported separately: this package stays pure).
"""

from bot.compliance.config import ComplianceConfig, default_config, load_compliance_config
from bot.compliance.engine import check, engine_for
from bot.compliance.reasons import ALL_REASONS, Reason
from bot.compliance.types import Decision, HistoryEntry, RuleResult, StopState, Subject

__all__ = [
    "ALL_REASONS",
    "ComplianceConfig",
    "Decision",
    "HistoryEntry",
    "Reason",
    "RuleResult",
    "StopState",
    "Subject",
    "check",
    "default_config",
    "engine_for",
    "load_compliance_config",
]
