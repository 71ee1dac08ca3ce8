"""The shipped LLM policy registry (ADR-003), as package data: ``llm-policy.yaml`` here.

This directory is the one copy: the checkout edits it, the wheel ships it, and
``partial_trust.middleware.policy`` reads it through ``importlib.resources`` when
``LLM_POLICY_PATH`` is
unset, so an installed ``partial-trust serve`` works from any directory.
``partial-trust init`` copies it out for a deployment to edit.
"""

POLICY_FILE = "llm-policy.yaml"
