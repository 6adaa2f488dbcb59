"""Errors of the fleet protocol, with the stable codes the agent acts on."""

from __future__ import annotations

from modelward.errors import Conflict, NotFound, Unauthorized


class HostKeyRevoked(Unauthorized):
    """The host key (or the host) was revoked by an admin: the agent must not report with it."""

    code = "host_key_revoked"


class ResyncRequired(Conflict):
    """A delta report's base is not the last report the server applied: send a full report."""

    code = "resync_required"


class HostNotFound(NotFound):
    code = "host_not_found"


class SecretNotFound(NotFound):
    code = "secret_not_found"


class NoBundle(NotFound):
    """No policy bundle has been pushed yet."""

    code = "no_policy_bundle"
