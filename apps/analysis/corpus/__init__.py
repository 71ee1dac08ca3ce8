"""The replay corpora shipped with the package (``partial-trust replay --corpus``)."""
