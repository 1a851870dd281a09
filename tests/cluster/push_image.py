#!/usr/bin/env python3
"""Push an image made by image.sh into a registry with the Docker Registry HTTP API v2.

    push_image.py REGISTRY_URL IMAGE_DIR NAME REPOSITORY:TAG [REPOSITORY:TAG ...]

IMAGE_DIR holds NAME.layer.tar.gz and NAME.config.json. Blobs the registry already has are not
sent again; each REPOSITORY:TAG gets the same schema-2 manifest. Only the standard library.
"""

import hashlib
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# The registry is on 127.0.0.1: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def push_blob(base, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, _ = request("HEAD", f"{base}/v2/{repo}/blobs/{digest}")
    if status == 200:
        return digest
    status, headers, body = request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    if status != 202:
        sys.exit(f"push_image: starting an upload to {repo} answered {status}: {body[:200]!r}")
    location = urllib.parse.urljoin(base + "/", headers["Location"])
    sep = "&" if "?" in location else "?"
    status, _, body = request(
        "PUT",
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
    )
    if status != 201:
        sys.exit(f"push_image: uploading {digest} to {repo} answered {status}: {body[:200]!r}")
    return digest


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    base, image_dir, name = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    with open(f"{image_dir}/{name}.layer.tar.gz", "rb") as f:
        layer = f.read()
    with open(f"{image_dir}/{name}.config.json", "rb") as f:
        config = f.read()
    for ref in sys.argv[4:]:
        repo, _, tag = ref.rpartition(":")
        if not repo:
            sys.exit(f"push_image: {ref!r} is not REPOSITORY:TAG")
        layer_digest = push_blob(base, repo, layer)
        config_digest = push_blob(base, repo, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": config_digest},
                "layers": [{"mediaType": LAYER_TYPE, "size": len(layer), "digest": layer_digest}],
            }
        ).encode()
        status, _, body = request(
            "PUT",
            f"{base}/v2/{repo}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": MANIFEST_TYPE},
        )
        if status != 201:
            sys.exit(f"push_image: manifest {ref} answered {status}: {body[:200]!r}")


if __name__ == "__main__":
    main()
