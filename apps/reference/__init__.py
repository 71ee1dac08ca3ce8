"""The reference app: a deterministic RouterV2-style router to mount the corridor on."""
