"""One module per format family; each registers its detectors with ``@register``."""
