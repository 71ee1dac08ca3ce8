"""The labelled shopping corpus (``shopping_labelled.json``), built by ``build`` from rows."""
