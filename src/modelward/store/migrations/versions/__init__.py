"""One module per schema version, oldest first (see ``modelward.store.migrate``)."""
