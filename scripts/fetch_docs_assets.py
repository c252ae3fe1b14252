#!/usr/bin/env python3
"""Fetches the docs pages' JavaScript and CSS into trioapi's package, pinned and checked.

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their bundles from the app
itself, so the pages work without a network. This script puts those files in
``trioapi/_openapi/assets/``, one folder per package and version
(``swagger-ui-dist@5.35.0/``), with the packages' licences beside them:

1. ``npm pack NAME@VERSION`` downloads each pinned package's tarball from the
   npm registry, as npm is configured on this machine;
2. the tarball's SHA-256 must equal the pinned one, or nothing is written;
3. the files trioapi serves are extracted, and ``SHA256SUMS`` lists each with
   its checksum (the app's tests check the served files against it).

Updating: change ``VERSION`` of a package, run with ``--update`` (which
prints the new tarball checksums instead of checking them), review what
changed upstream, paste the checksums into ``PACKAGES``, run it again
without ``--update``, and update ``trioapi/_openapi/assets.py`` if a version
number changed. Needs only Python's standard library and npm.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "trioapi" / "_openapi" / "assets"

PACKAGES: dict[str, dict[str, object]] = {
    "swagger-ui-dist": {
        "version": "5.35.0",
        "sha256": "1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6",
        "files": [
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "favicon-32x32.png",
            "LICENSE",
            "NOTICE",
            "swagger-ui-bundle.js.LICENSE.txt",
        ],
    },
    "redoc": {
        "version": "2.5.4",
        "sha256": "44922df4d0eb45c1b066c09ec251e6bd9bd7ded16bc69e87613337b9d911a56e",
        "files": [
            "bundles/redoc.standalone.js",
            "bundles/redoc.standalone.js.LICENSE.txt",
            "LICENSE",
        ],
    },
}


def _pack(name: str, version: str, workdir: Path) -> bytes:
    result = subprocess.run(
        ["npm", "pack", "--silent", f"{name}@{version}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"npm pack {name}@{version} failed:\n{result.stderr}")
    tarball = workdir / result.stdout.strip().splitlines()[-1]
    return tarball.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--update",
        action="store_true",
        help="print the tarballs' checksums instead of checking them (writes nothing)",
    )
    args = parser.parse_args()
    if shutil.which("npm") is None:
        sys.exit("npm is needed (apt-get install npm)")
    sums: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        extracted: dict[Path, bytes] = {}
        for name, spec in PACKAGES.items():
            version = str(spec["version"])
            data = _pack(name, version, Path(tmp))
            digest = hashlib.sha256(data).hexdigest()
            if args.update:
                print(f"{name}@{version}: sha256 {digest}")
                continue
            if digest != spec["sha256"]:
                sys.exit(
                    f"{name}@{version}: the tarball's sha256 is {digest}, "
                    f"not the pinned {spec['sha256']}; nothing was written"
                )
            folder = Path(f"{name}@{version}")
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                for member in spec["files"]:  # type: ignore[attr-defined]
                    handle = archive.extractfile(f"package/{member}")
                    if handle is None:
                        sys.exit(f"{name}@{version} has no file {member}")
                    extracted[folder / Path(member).name] = handle.read()
        if args.update:
            return
    if ASSETS.exists():
        shutil.rmtree(ASSETS)
    for relative, content in sorted(extracted.items()):
        target = ASSETS / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        sums.append(f"{hashlib.sha256(content).hexdigest()}  {relative.as_posix()}")
    (ASSETS / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    print(f"wrote {len(extracted)} files under {ASSETS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
