"""Partial Trust Corridor: an LLM decides inside one allow-listed corridor, safely.

The one import root of everything the distribution installs, so that no host application's
own ``middleware`` or ``flags`` package can collide with ours. The repository keeps the
design card's folders and maps them under this root (``partial_trust/middleware`` is the
folder ``middleware/``, and so on); the modules here are the contracts every layer shares:

* ``partial_trust.config``, ``outcome``, ``contracts``, ``thresholds``: contracts;
* ``partial_trust.middleware``: the library (engine, ASGI middleware, sinks, LLM client,
  the shopping corridor with its deterministic baseline);
* ``partial_trust.flags``: the OpenFeature wiring;
* ``partial_trust.apps``: the applications (``serve``, llm-sim, analysis, console, CLI),
  which import the library and are never imported by it.
"""
