"""The advisory review store's read side: the reviewer's queue, verdicts, override rate and
export. The write side is in the library (``partial_trust.middleware.review``)."""
