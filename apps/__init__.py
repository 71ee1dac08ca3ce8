"""The applications on top of the corridor library: the reference app and `serve`,
llm-sim, the analyzer/gate/replay/triage, the flag console and the `partial-trust` CLI.
They import the library; the library never imports them."""
