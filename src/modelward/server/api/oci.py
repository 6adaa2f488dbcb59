"""OCI distribution and Ollama routes under ``/v2/``: pull approved revisions, push into review.

Pull: a tag (``latest`` means ``main`` unless a tag of that name exists), ``main`` or a 40-hex
commit names a revision; :func:`modelward.hub.oci.negotiate` picks the rendering from ``Accept``
(OCI manifest -> the manifest that was pushed, else ModelPack; Docker v2 only, as ``ollama pull``
asks -> the Ollama manifest of a GGUF revision). Manifests and configs are rendered on request from
the revision, deterministically, so every replica serves the same digests without storing them.
A blob GET answers 200 with the bytes *and* ``Location: <signed URL>``: Ollama reads that header
and fetches ranges from it without ``Authorization``.

Auth: the Docker token flow. A 401 carries ``WWW-Authenticate: Bearer realm="<this host>/v2/token"``;
``/v2/token`` trades ``Basic any:<API token>`` (oras, docker) or an Ollama ed25519-signed request
from a registered key for a short-lived registry token. ``Bearer <API token>`` works directly too.

Push: uploads (monolithic, or chunked with PATCH; the session state travels signed in the upload
URL, so any replica can continue it) land in the blob store; ``PUT manifests/<tag>`` turns the
manifest's layers into a revision (provenance ``oci``) that is scanned and put in the review queue.

The routes live in :mod:`~modelward.server.api.oci_auth` (challenge, ``/v2/``, ``/v2/token``),
:mod:`~modelward.server.api.oci_pull` and :mod:`~modelward.server.api.oci_push`; this module joins
them into the one router the app includes.
"""

from __future__ import annotations

from fastapi import APIRouter

from modelward.server.api import oci_auth, oci_pull, oci_push

router = APIRouter()
for _part in (oci_auth, oci_pull, oci_push):
    router.include_router(_part.router)
