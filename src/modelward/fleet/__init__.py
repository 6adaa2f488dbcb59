"""The fleet console's server-side library: enrollment, host keys, report ingestion, bundles, queries."""
