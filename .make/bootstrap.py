"""Set-up helpers of the Makefile, standard library only (a fresh machine has python3 and
make, and on Debian or Ubuntu no pip).

    python3 .make/bootstrap.py uv DEST      install the pinned uv into DEST/bin/uv
    python3 .make/bootstrap.py system       check the system libraries the wheels need

uv comes from pip when pip is there; otherwise its wheel is taken from the package index
(PIP_INDEX_URL or PyPI), checked against the sha256 pinned below, and its binary extracted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path

UV_VERSION = "0.13.9"
# sha256 of the uv wheels this project accepts, by (system, machine).
UV_WHEELS = {
    ("Linux", "x86_64"): (
        "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    ),
    ("Linux", "aarch64"): (
        "uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl",
        "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375",
    ),
    ("Darwin", "x86_64"): (
        "uv-0.13.9-py3-none-macosx_10_12_x86_64.whl",
        "c16ed11e013557536b3e60065f1b912f6407bd6518e041b961e23ef9e6b4fbf5",
    ),
    ("Darwin", "arm64"): (
        "uv-0.13.9-py3-none-macosx_11_0_arm64.whl",
        "66c512266d633bef48384a1f53003f41f2a8e7b36fe6e7fbfd3e0fd52d96fa63",
    ),
}

# System libraries that wheels load at run time: (what, why, how to install it).
SYSTEM_LIBRARIES = {
    "Linux": [
        (
            "libgomp.so.1",
            "the OpenMP runtime LightGBM loads",
            "apt-get install libgomp1 (Debian/Ubuntu), dnf install libgomp (Fedora/RHEL), apk add libgomp (Alpine)",
        )
    ],
    "Darwin": [("libomp.dylib", "the OpenMP runtime LightGBM loads", "brew install libomp")],
}


# Programs the tests drive: (name, why, how to install it).
SYSTEM_PROGRAMS = {
    "Linux": [
        (
            "chromium",
            "the browser the report test opens",
            "apt-get install chromium chromium-driver (Debian)",
        ),
        ("chromedriver", "drives that browser", "apt-get install chromium-driver (Debian)"),
    ],
    "Darwin": [
        ("chromium", "the browser the report test opens", "brew install --cask chromium"),
        ("chromedriver", "drives that browser", "brew install --cask chromedriver"),
    ],
}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def uv_with_pip(dest: Path) -> bool:
    have_pip = (
        subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode
        == 0
    )
    if not have_pip:
        return False
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--target",
        str(dest),
        f"uv=={UV_VERSION}",
    ]
    return subprocess.run(cmd).returncode == 0


def uv_from_index(dest: Path) -> None:
    key = (platform.system(), platform.machine())
    if key not in UV_WHEELS:
        fail(
            f"no pinned uv wheel for {key[0]} {key[1]}: install uv {UV_VERSION} yourself (see https://docs.astral.sh/uv/)"
        )
    name, sha256 = UV_WHEELS[key]
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    shown = re.sub(r"//[^/@]*@", "//***@", index)  # an index URL may carry user:token
    request = urllib.request.Request(
        f"{index}/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            files = {f["filename"]: f["url"] for f in json.load(answer)["files"]}
        url = urllib.parse.urljoin(f"{index}/uv/", files[name])
        with urllib.request.urlopen(url, timeout=300) as answer:
            data = answer.read()
    except KeyError:
        fail(f"{name} is not on {shown}")
    except OSError as exc:
        fail(f"cannot download uv from {shown}: {exc} (behind a TLS proxy? set SSL_CERT_FILE)")
    if hashlib.sha256(data).hexdigest() != sha256:
        fail(f"{name} from {shown} does not match its pinned sha256: refusing it")
    with zipfile.ZipFile(BytesIO(data)) as wheel:
        binary = next(n for n in wheel.namelist() if n.endswith(".data/scripts/uv"))
        target = dest / "bin" / "uv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(wheel.read(binary))
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def install_uv(dest: Path) -> None:
    if not uv_with_pip(dest):
        uv_from_index(dest)
    print(f"uv {UV_VERSION} installed in {dest / 'bin'}")


def loadable(library: str) -> bool:
    try:
        ctypes.CDLL(library)
        return True
    except OSError:
        return ctypes.util.find_library(library.removeprefix("lib").split(".")[0]) is not None


def check_system() -> None:
    missing = [
        (lib, why, how)
        for lib, why, how in SYSTEM_LIBRARIES.get(platform.system(), [])
        if not loadable(lib)
    ]
    for lib, why, how in missing:
        print(f"error: missing system library {lib} ({why}); install it: {how}", file=sys.stderr)
    programs = [
        (name, why, how)
        for name, why, how in SYSTEM_PROGRAMS.get(platform.system(), [])
        if shutil.which(name) is None
    ]
    for name, why, how in programs:
        print(f"error: missing program {name} ({why}); install it: {how}", file=sys.stderr)
    if missing or programs:
        sys.exit(2)


if __name__ == "__main__":
    if sys.argv[1:2] == ["uv"] and len(sys.argv) == 3:
        install_uv(Path(sys.argv[2]))
    elif sys.argv[1:] == ["system"]:
        check_system()
    else:
        fail("usage: bootstrap.py uv DEST | bootstrap.py system")
