"""Policy as code over the inventory: Rego evaluation, settings, waivers and the quarantine vault."""
