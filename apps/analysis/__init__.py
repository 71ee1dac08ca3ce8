"""Risk-log analysis and the runbook's stage gates: evidence for promotion and rollback.

``reader`` streams files into a ``tally.Tally`` (counts only), ``figures`` turns counts into
the runbook's figures, ``gate`` judges a ``Figures`` against a stage, ``cli`` wires them to
``partial-trust analyze`` / ``gate``. Only the standard library is needed, so the runbook's
``python3 scripts/analyze_partial_trust.py`` works on a bare host: ``records`` validates lines
with pydantic when it is installed and with the same rules in the standard library when not
(``tests/packaging`` runs the script on a Python without packages). The exception is
``replay`` (with ``replay_corpus``, ``replay_run`` and ``replay_report``), which drives the
real corridor engine for ``partial-trust replay``; ``cli`` imports it only when asked for.
See README.md here.
"""
