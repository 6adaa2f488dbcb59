"""The internal model hub: revisions, review workflow, signing and protocol renderings."""
