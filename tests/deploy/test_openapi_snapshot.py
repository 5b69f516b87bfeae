"""The service's published shapes, byte for byte: GET /openapi.json (without a release and with
one) and the /docs page are compared with snapshots under tests/deploy/data/.

The document is the contract clients generate code from, so moving the schemas, the handlers or
the routes between modules must not change one byte of it. The served bundle's id and release
name are replaced by placeholders (they follow the model's serialisation, not the service).
A deliberate change to the document (or a FastAPI/pydantic upgrade that changes its rendering)
regenerates the snapshots with `PYTHONPATH=. python -m tests.deploy.test_openapi_snapshot`;
review the diff before committing it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.deploy.serving import Built, make_bundle, project, release, running, wait_for

DATA = Path(__file__).parent / "data"
SNAPSHOTS = ("openapi-no-release.json", "openapi.json", "docs.html")


def _published(tmp_path: Path) -> dict[str, bytes]:
    """The three documents as served, the bundle-dependent names replaced by placeholders."""
    root = project(tmp_path)
    out: dict[str, bytes] = {}
    with running(root, docs=True) as srv, srv.client() as client:
        out["openapi-no-release.json"] = client.get("/openapi.json").content
        built = make_bundle(root)
        release(root, built)
        assert wait_for(lambda: srv.service.slot.current is not None)
        out["openapi.json"] = _anonymous(client.get("/openapi.json").content, built)
        out["docs.html"] = client.get("/docs").content
    return out


def _anonymous(document: bytes, built: Built) -> bytes:
    text = document.decode()
    assert built.release in text and built.id in text  # else the placeholders hide nothing
    return text.replace(built.release, "<release>").replace(built.id, "<bundle>").encode()


def test_the_published_documents_are_unchanged(tmp_path: Path) -> None:
    published = _published(tmp_path)
    for name in SNAPSHOTS:
        assert published[name] == (DATA / name).read_bytes(), f"{name} differs from its snapshot"


if __name__ == "__main__":  # regenerate the snapshots (see the module docstring)
    DATA.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in _published(Path(tmp)).items():
            (DATA / name).write_bytes(content)
            print(f"wrote {DATA / name} ({len(content)} bytes)")
