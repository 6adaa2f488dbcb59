"""HTTP routes, one module per protocol or resource."""
