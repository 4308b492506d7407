"""Fetching data that ships inside registry packages, into the toolkit's data cache.

Some real datasets are only available offline inside PyPI wheels (see
DESIGN.md). They are downloaded with `pip download --no-deps` (a package
registry is reachable where PyPI is), and only the needed members are
extracted; archive members that would land outside the target directory
are refused.

Example (shell): `toolkit data fetch nuclei` or `toolkit data fetch movielens`
(or it happens on first use).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from toolkit.atomic import atomic_path
from toolkit.errors import DataError

STARDIST = {
    "dataset": "nuclei",
    "requirement": "stardist==0.9.2",
    "members": {"img2d.tif": "stardist/data/images/img2d.tif", "mask2d.tif": "stardist/data/images/mask2d.tif"},
    "origin": "PyPI wheel stardist 0.9.2 (BSD-3-Clause), stardist/data/images/{img2d,mask2d}.tif",
}

# GroupLens MovieLens 100K as RecBole atomic files (tab-separated, typed headers). The wheel's
# recbole/dataset_example/ml-100k/ also holds ml-100k.kg and ml-100k.link (a Freebase knowledge
# graph, 3.5 MB), which no recipe reads, so they are not extracted.
MOVIELENS_100K = {
    "dataset": "movielens",
    "requirement": "recbole==1.2.1",
    "members": {name: f"recbole/dataset_example/ml-100k/{name}"
                for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user")},
    "origin": "GroupLens MovieLens 100K (F. M. Harper and J. A. Konstan, ACM TiiS 2015; "
              "https://grouplens.org/datasets/movielens/100k/, research use, do not redistribute) as RecBole "
              "atomic files from the PyPI wheel recbole 1.2.1 (MIT), recbole/dataset_example/ml-100k/"
              "ml-100k.{inter,item,user}",
}

# `toolkit data fetch NAME`: NAME -> (spec, directory name under $TOOLKIT_HOME/data).
FETCHABLE = {"nuclei": (STARDIST, "stardist"), "movielens": (MOVIELENS_100K, "movielens-100k")}


def data_cache(name):
    """Returns `$TOOLKIT_HOME/data/<name>`."""
    from toolkit.backbones.weights import toolkit_home

    return os.path.join(toolkit_home(), "data", name)


def safe_extract(archive, member, target):
    """Extracts one zip member to `target` (a file path), refusing unsafe names."""
    name = os.path.normpath(member)
    if os.path.isabs(member) or name.startswith(".."):
        raise DataError(f"refusing archive member {member!r}: it points outside the target directory")
    with archive.open(member) as source, atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(source, out)


def fetch_wheel_members(spec, directory, download=True):
    """Makes sure the members of `spec` are in `directory`; returns their paths."""
    paths = {name: os.path.join(directory, name) for name in spec["members"]}
    if all(os.path.isfile(path) for path in paths.values()):
        return paths
    if not download:
        raise DataError(
            f"{', '.join(spec['members'])} not found in {directory} and data.download is false; "
            f"fetch them with: toolkit data fetch {spec.get('dataset', '')} (needs PyPI), "
            "or set data.path to a directory holding them"
        )
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--quiet",
                   "-d", tmp, spec["requirement"]]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = [name for name in os.listdir(tmp) if name.endswith(".whl")]
        if result.returncode != 0 or not wheels:
            reason = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1][:200]
            raise DataError(
                f"could not download {spec['requirement']} from PyPI ({reason}); on a connected machine run "
                f"`pip download --no-deps {spec['requirement']}` and extract {', '.join(spec['members'].values())} "
                f"into {directory}"
            )
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as archive:
            for name, member in spec["members"].items():
                safe_extract(archive, member, paths[name])
    with open(os.path.join(directory, "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(spec["origin"] + "\n")
    return paths


def fetch_dataset(name, download=True):
    """Fetches a `FETCHABLE` dataset into its data cache; returns {file name: path}.

    Args:
        name: str. "nuclei" or "movielens".
        download: bool. Whether PyPI may be asked when the files are not cached.
    """
    if name not in FETCHABLE:
        raise DataError(f"unknown dataset {name!r} to fetch; choose one of {', '.join(sorted(FETCHABLE))}")
    spec, folder = FETCHABLE[name]
    return fetch_wheel_members(spec, data_cache(folder), download=download)
