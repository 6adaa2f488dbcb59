"""OCI pull routes: manifests (ModelPack, Ollama, or what was pushed), blobs, tags, referrers.

A tag, ``main`` (``latest`` is another name for it) or a 40-hex commit names a revision. Tags
follow :mod:`modelward.hub.service`: ``latest`` always serves the newest approved revision, even
while a newer push waits in review; a tag pushed with a revision serves nothing until that revision
is approved and never moves after; a publisher cannot put a new tag on an approved revision; :func:`modelward.hub.oci.negotiate` picks the rendering from ``Accept`` (OCI
manifest -> the manifest that was pushed, else ModelPack; Docker v2 only, as ``ollama pull`` asks
-> the Ollama manifest of a GGUF revision). Manifests and configs are rendered on request from the
revision, deterministically, so every replica serves the same digests without storing them. A blob
GET answers 200 with the bytes *and* ``Location: <signed URL>``: Ollama reads that header and
fetches ranges from it without ``Authorization``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from modelward.errors import BlobNotFound, NotFound
from modelward.hub import oci, oci_parse, urlsign
from modelward.hub.names import is_commit, validate_tag
from modelward.hub.revision import RevisionView
from modelward.hub.service import Hub
from modelward.server.api.oci_auth import (
    API_VERSION,
    base_url,
    caller,
    digest_hex,
    repo_name,
    url_key,
)
from modelward.server.streaming import blob_response, parse_range

router = APIRouter(tags=["oci"])

_REFERRER_TITLES: Final = {
    "signature": "model.sig",
    "scan-report": "scan.json",
    "approval": "approval.json",
}


class ManifestUnknown(NotFound):
    code = "manifest_unknown"
    oci_code = "MANIFEST_UNKNOWN"


# --------------------------------------------------------------------------- what a repo serves
@dataclass(frozen=True, slots=True)
class Doc:
    """A manifest or derived blob: bytes, media type, and the revision it belongs to."""

    data: bytes
    media_type: str
    rev: RevisionView

    @property
    def digest(self) -> str:
        return oci.sha256_digest(self.data)


def _pushed(hub: Hub, rev: RevisionView, atts: dict[str, tuple[str, str, int]]) -> Doc | None:
    att = atts.get("oci-manifest")
    if att is None or not hub.blobs.exists(att[0]):
        return None
    hub.blobs.ensure_intact(att[0])  # a manifest changed on disk is never served
    with hub.blobs.open(att[0]) as fh:
        return Doc(fh.read(oci_parse.MAX_MANIFEST_BYTES + 1), att[1], rev)


def _manifests(hub: Hub, rev: RevisionView) -> Iterator[tuple[Doc, oci.Rendered | None]]:
    """Every manifest a revision is served as, with its rendering (None for the pushed one)."""
    atts = hub.attachments(rev.repo, rev.commit)
    pushed = _pushed(hub, rev, atts)
    if pushed is not None:
        yield pushed, None
    mp = oci.render_modelpack(rev)
    yield Doc(mp.manifest, mp.media_type, rev), mp
    ol = oci.render_ollama(rev)
    if ol is not None:
        yield Doc(ol.manifest, ol.media_type, rev), ol


def _referrers(hub: Hub, subject: Doc) -> list[oci.Rendered]:
    rev = subject.rev
    desc = oci.Descriptor(subject.media_type, subject.digest, len(subject.data))
    out = []
    atts = hub.attachments(rev.repo, rev.commit)
    for kind in ("signature", "scan-report", "approval"):
        if kind not in atts:
            continue
        sha, media_type, size = atts[kind]
        blob = oci.Descriptor(
            media_type, "sha256:" + sha, size, {oci.ANNOTATION_TITLE: _REFERRER_TITLES[kind]}
        )
        out.append(oci.render_referrer(desc, media_type, blob, {"dev.modelward.kind": kind}))
    return out


def _find_manifest(hub: Hub, repo: str, digest: str) -> Doc:
    """The manifest (of any revision's rendering, or a referrer) with this digest."""
    for rev in hub.revisions(repo):
        for doc, _ in _manifests(hub, rev):
            if doc.digest == digest:
                return _servable(hub, doc)
            if rev.state == "approved":
                for ref in _referrers(hub, doc):
                    if ref.digest == digest:
                        return Doc(ref.manifest, ref.media_type, rev)
    raise ManifestUnknown(f"manifest {digest} of {repo!r} not found", repo=repo, digest=digest)


def _servable(hub: Hub, doc: Doc) -> Doc:
    if doc.rev.state != "approved":
        hub.resolve(doc.rev.repo, doc.rev.commit)  # raises NotApproved / Revoked with the reason
    return doc


def _resolve(hub: Hub, repo: str, reference: str) -> RevisionView:
    if not is_commit(reference) and reference != "main":
        validate_tag(reference)
    # `latest` resolves as `main` in the hub: a push of `latest` waiting in review never hides it.
    return hub.resolve(repo, reference)


def _choose(hub: Hub, rev: RevisionView, accept: str | None) -> Doc:
    docs = list(_manifests(hub, rev))
    pushed = docs[0][0] if docs[0][1] is None else None
    # What `ollama push` sent (with Ollama's own config) wins over the rendering, as the pushed
    # OCI manifest does for OCI clients: a client that pushed gets back the digest it pushed.
    ollama = next(
        (d for d, r in docs if r is not None and d.media_type == oci.DOCKER_MANIFEST), None
    )
    if pushed is not None and pushed.media_type == oci.DOCKER_MANIFEST:
        ollama = pushed
    pick = oci.negotiate(accept, ollama_available=ollama is not None)
    if pick == "ollama" and ollama is not None:
        return ollama
    if pick == "modelpack":
        if pushed is not None and pushed.media_type == oci.OCI_MANIFEST:
            return pushed
        return next(d for d, r in docs if r is not None and d.media_type == oci.OCI_MANIFEST)
    raise ManifestUnknown(
        f"{rev.repo}@{rev.commit[:12]} has no manifest of the accepted types: the Docker v2 "
        "(Ollama) manifest exists only for revisions with one GGUF file; ask for "
        f"{oci.OCI_MANIFEST} to get the ModelPack manifest",
        repo=rev.repo,
        accept=(accept or "")[:200],
    )


def _derived_blob(hub: Hub, repo: str, digest: str) -> Doc | None:
    """Config blobs of rendered manifests (not stored: rendered again on request)."""
    for rev in hub.revisions(repo):
        if rev.state != "approved":
            continue
        for rendered in (oci.render_modelpack(rev), oci.render_ollama(rev)):
            if rendered is not None and rendered.config_digest == digest:
                return Doc(rendered.config, rendered.config_media_type, rev)
        if digest == oci.empty_config().digest:
            return Doc(oci.EMPTY_CONFIG_BYTES, oci.OCI_EMPTY, rev)
    return None


def _manifest_response(request: Request, doc: Doc) -> Response:
    headers = {
        "Docker-Content-Digest": doc.digest,
        "ETag": f'"{doc.digest}"',
        "X-Modelward-Revision": doc.rev.commit,
        **API_VERSION,
    }
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(doc.data))
        return Response(b"", media_type=doc.media_type, headers=headers)
    return Response(doc.data, media_type=doc.media_type, headers=headers)


# --------------------------------------------------------------------------- pull routes
@router.api_route("/v2/{ns}/{name}/manifests/{reference}", methods=["GET", "HEAD"])
def get_manifest(ns: str, name: str, reference: str, request: Request) -> Response:
    """A manifest by tag, ``main``, commit or digest (approved revisions only)."""
    repo = repo_name(ns, name)
    caller(request, "read", repo)
    hub: Hub = request.app.state.hub
    if reference.startswith("sha256:"):
        digest_hex(reference)
        return _manifest_response(request, _find_manifest(hub, repo, reference))
    rev = _resolve(hub, repo, reference)
    return _manifest_response(request, _choose(hub, rev, request.headers.get("accept")))


@router.api_route("/v2/{ns}/{name}/blobs/{digest}", methods=["GET", "HEAD"])
def get_blob(ns: str, name: str, digest: str, request: Request) -> Response:
    """A blob of an approved revision. With ``exp``/``sig`` (the signed URL) no token is needed."""
    repo = repo_name(ns, name)
    hex_digest = digest_hex(digest)
    q = request.query_params
    signed = "sig" in q or "exp" in q
    if signed:
        urlsign.verify_blob(url_key(request), repo, digest, q.get("exp"), q.get("sig"))
    else:
        caller(request, "read", repo)
    hub: Hub = request.app.state.hub
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', **API_VERSION}
    if not signed and request.method == "GET":
        ttl = request.app.state.settings.signed_url_ttl
        query = urlsign.signed_blob_query(url_key(request), repo, digest, ttl=ttl)
        headers["Location"] = f"{base_url(request)}/v2/{repo}/blobs/{digest}?{query}"
    if hub.has_blob_in_repo(repo, hex_digest):
        return blob_response(request, hub.blobs, hex_digest, headers)
    doc = _derived_blob(hub, repo, digest)
    if doc is None:
        raise BlobNotFound(
            f"blob {digest} is not part of an approved revision of {repo!r}", digest=digest
        )
    return _bytes_response(request, doc.data, headers, doc.media_type)


def _bytes_response(
    request: Request, data: bytes, headers: dict[str, str], media_type: str
) -> Response:
    h = {"Accept-Ranges": "bytes", **headers}
    status, body = 200, data
    rng = request.headers.get("range")
    parsed = parse_range(rng, len(data)) if rng else None
    if parsed is not None:
        start, end = parsed
        status, body = 206, data[start : end + 1]
        h["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    h["Content-Length"] = str(len(body))
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=h, media_type=media_type)
    return Response(body, status_code=status, headers=h, media_type=media_type)


@router.get("/v2/{ns}/{name}/tags/list")
def tags_list(
    ns: str, name: str, request: Request, n: int | None = None, last: str = ""
) -> Response:
    """Tags of approved revisions, plus ``main`` and ``latest`` for the approved head."""
    repo = repo_name(ns, name)
    caller(request, "read", repo)
    hub: Hub = request.app.state.hub
    tags: set[str] = set()
    for rev in hub.revisions(repo):
        if rev.state == "approved":
            tags.update(rev.tags)
            if rev.is_main:
                tags.update(("main", "latest"))
    ordered = sorted(t for t in tags if t > last)
    headers = dict(API_VERSION)
    if n is not None and n >= 0 and len(ordered) > n:
        ordered = ordered[:n]
        nxt = urllib.parse.urlencode({"n": n, "last": ordered[-1]}) if ordered else ""
        headers["Link"] = f'</v2/{repo}/tags/list?{nxt}>; rel="next"'
    return JSONResponse({"name": repo, "tags": ordered}, headers=headers)


@router.get("/v2/{ns}/{name}/referrers/{digest}")
def referrers(
    ns: str, name: str, digest: str, request: Request, artifactType: str | None = None
) -> Response:
    """Signature bundle, scan report and approval record of the revision a manifest renders."""
    repo = repo_name(ns, name)
    caller(request, "read", repo)
    digest_hex(digest)
    hub: Hub = request.app.state.hub
    found: list[oci.Descriptor] = []
    for rev in hub.revisions(repo):
        if rev.state != "approved":
            continue
        for doc, _ in _manifests(hub, rev):
            if doc.digest == digest:
                found = [r.descriptor() for r in _referrers(hub, doc)]
                break
        if found:
            break
    headers = dict(API_VERSION)
    if artifactType:
        found = [d for d in found if d.artifact_type == artifactType]
        headers["OCI-Filters-Applied"] = "artifactType"
    return Response(oci.render_index(found), media_type=oci.OCI_INDEX, headers=headers)
