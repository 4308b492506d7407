"""Fetching data that ships inside registry packages, into the toolkit's data cache.

Some real datasets are only available offline inside PyPI wheels (see
DESIGN.md). They are downloaded with `pip download --no-deps` (a package
registry is reachable where PyPI is), and only the needed members are
extracted; archive members that would land outside the target directory
are refused. `extract_archive` is the one place the toolkit extracts whole
archives (zip or tar): it checks every member before it writes anything.

Example (shell): `toolkit data fetch nuclei`, `toolkit data fetch movielens` or `toolkit data fetch ucr`
(or it happens on first use).
"""

import os
import posixpath
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

# UCR/UEA time-series classification sets (equal length, .ts files) from the sktime wheel, which the anomaly
# detection task reads with one class normal and the others anomalous; plus the wheel's two labelled anomaly
# series (data,label CSV files). The wheel also ships ACSF1 (3.3 MB), variable-length sets (JapaneseVowels,
# PLAID), regression sets (Covid3Month, Tecator) and forecasting tables, which are not extracted.
UCR_SETS = ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "OSULeaf")
SKTIME_UCR = {
    "dataset": "ucr",
    "requirement": "sktime==1.2.0",
    "members": {**{f"{name}_{split}.ts": f"sktime/datasets/data/{name}/{name}_{split}.ts"
                   for name in UCR_SETS for split in ("TRAIN", "TEST")},
                "yahoo.csv": "sktime/datasets/data/yahoo/yahoo.csv",
                "mitdb.csv": "sktime/datasets/data/mitdb/mitdb.csv"},
    "origin": "UCR/UEA time series classification archive (H. A. Dau et al., IEEE/CAA JAS 2019; A. Bagnall et al., "
              "arXiv:1811.00075; https://timeseriesclassification.com) sets ArrowHead, BasicMotions, GunPoint, "
              "ItalyPowerDemand, OSULeaf as .ts files, and the labelled series yahoo.csv and mitdb.csv (provenance "
              "not documented in the wheel), from the PyPI wheel sktime 1.2.0 (BSD-3-Clause), sktime/datasets/data/",
}

# `toolkit data fetch NAME`: NAME -> (spec, directory name under $TOOLKIT_HOME/data); a spec with a "fetch"
# entry ("module:function", called with the directory) is fetched by it instead of from a wheel.
ASTERISK = {"dataset": "asterisk", "fetch": "toolkit.data.asterisk:fetch_asterisk"}
FETCHABLE = {"nuclei": (STARDIST, "stardist"), "movielens": (MOVIELENS_100K, "movielens-100k"),
             "asterisk": (ASTERISK, "asterisk"), "ucr": (SKTIME_UCR, "ucr")}


def data_cache(name):
    """Returns `$TOOLKIT_HOME/data/<name>`."""
    from toolkit.paths import toolkit_home

    return os.path.join(toolkit_home(), "data", name)


def unsafe_member(name):
    """Why an archive member name would land outside the directory it is extracted into, or None.

    Absolute names (`/x`, `\\x`, `C:x`) and names with a `..` component are unsafe; names are normalised
    the POSIX way (archives use `/`), backslashes counted as separators too.
    """
    text = str(name).replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return "an absolute path"
    if ".." in posixpath.normpath(text).split("/"):
        return "a path that climbs out with .."
    return None


def _refuse(source, member, reason, target):
    return DataError(f"{source}: refusing archive member {member!r}: {reason}, outside {target}; nothing was "
                     "extracted (the archive is damaged or malicious)")


def safe_extract(archive, member, target):
    """Extracts one zip member to `target` (a file path), refusing unsafe names."""
    reason = unsafe_member(member)
    if reason:
        raise _refuse(getattr(archive, "filename", None) or "archive", member, reason, "the target directory")
    with archive.open(member) as source, atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(source, out)


def extract_archive(source, target, name=None):
    """Extracts a whole zip or tar archive (optionally compressed) into the directory `target`.

    Every member is checked before anything is written: an absolute name, a `..` component, a symbolic or
    hard link pointing outside `target`, or a device or FIFO member refuses the whole archive with one
    DataError, so nothing is ever written outside `target` (nor, then, inside it). Tar archives are also
    extracted with Python's "data" filter where it exists. This is the one place the toolkit extracts archives.

    Args:
        source: str path of the archive, or a binary file object.
        target: str. The directory to extract into (created when missing).
        name: str or None. How the archive is named in errors (default: the path, or "archive").

    Returns:
        The extracted member names.
    """
    import tarfile

    label = name or (source if isinstance(source, (str, os.PathLike)) else "archive")
    root = os.path.realpath(target)
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
            for member in members:
                reason = unsafe_member(member.filename)
                if reason is None and (member.external_attr >> 16) & 0o170000 == 0o120000:
                    reason = "a symbolic link"
                if reason:
                    raise _refuse(label, member.filename, reason, target)
            os.makedirs(target, exist_ok=True)
            archive.extractall(target)
            return [member.filename for member in members]
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        archive = tarfile.open(fileobj=source) if hasattr(source, "read") else tarfile.open(source)
    except (tarfile.TarError, OSError) as error:
        raise DataError(f"{label}: not a zip or tar archive ({error}); give a .zip, .tar, .tar.gz or .tar.bz2 file")
    with archive:
        members = archive.getmembers()
        for member in members:
            reason = unsafe_member(member.name)
            if reason is None and (member.issym() or member.islnk()):
                base = os.path.dirname(os.path.join(root, member.name)) if member.issym() else root
                pointed = os.path.realpath(os.path.join(base, member.linkname))
                # a symbolic link may climb with .. as long as it lands inside (Debian packages' links do)
                bad_name = (unsafe_member(member.linkname) == "an absolute path" if member.issym()
                            else unsafe_member(member.linkname))
                if bad_name or not (pointed + os.sep).startswith(root + os.sep):
                    reason = f"a {'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}"
            if reason is None and (member.isdev() or member.isfifo()):
                reason = "a device or FIFO"
            if reason:
                raise _refuse(label, member.name, reason, target)
        os.makedirs(target, exist_ok=True)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(target, filter="data")
        else:  # Python < 3.11.4: every member was checked above
            archive.extractall(target)  # noqa: S202
        return [member.name for member in members]


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
        name: str. "nuclei", "movielens", "asterisk" or "ucr".
        download: bool. Whether PyPI may be asked when the files are not cached.
    """
    if name not in FETCHABLE:
        raise DataError(f"unknown dataset {name!r} to fetch; choose one of {', '.join(sorted(FETCHABLE))}")
    spec, folder = FETCHABLE[name]
    if "fetch" in spec:
        import importlib

        module, function = spec["fetch"].split(":")
        root = getattr(importlib.import_module(module), function)(data_cache(folder), download=download)
        return {name: root}
    return fetch_wheel_members(spec, data_cache(folder), download=download)
