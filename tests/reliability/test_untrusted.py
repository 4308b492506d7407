"""Issue 9, reliability: files from someone else are data, never code.

- A `.keras` file is loaded with Keras `safe_mode=True`: a Lambda layer (Python
  bytecode) or a class Keras does not register (`evil>Sneaky`, `os.system`) is
  refused with one ModelFileError line through every entry that loads `.keras`
  files, and the lambda never runs.
- No pickle anywhere: the toolkit's source is scanned for every way to unpickle
  or to load unsafely.
- Archives (zip, tar) are extracted only through `toolkit.data.fetch`, which
  refuses `../` members, absolute names and links pointing outside before it
  writes anything.
- `toolkit serve` refuses bodies over its limit (413), images over the pixel
  limit (400), and never echoes a file system path in an error.
"""

import ast
import base64
import io
import json
import os
import pathlib
import shutil
import tarfile
import tempfile
import zipfile

import numpy as np
import pytest
from test_bad_input import cli, refused

from toolkit.errors import DataError, ModelFileError

from conftest import REPO, write_recipe

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

TOOLKIT = os.path.join(REPO, "toolkit")
CLASS_NAMES = ["blue", "green", "red"]
METADATA = {"task": "image_classification", "input": "image", "class_names": CLASS_NAMES, "image_size": [32, 32],
            "channels": 3, "top_k": 3, "data_provenance": "hand-made",
            "backbone": {"reference": "resnet_tiny", "layer": "dense", "scale": 1.0, "offset": 0.0, "channels": 3,
                         "min_input_size": 16, "feature_layers": {}, "weights_source": "random",
                         "pretrained": False}}


# ------------------------------------------------------------------ .keras files


def _save(model, path, metadata=METADATA):
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:  # as toolkit.model_io.save_model writes it
        archive.writestr("toolkit.json", json.dumps(metadata))
    return str(path)


def _rewrite_layer(path, match, **changes):
    """Edits the config.json of a `.keras` file: the first layer of class `match` gets `changes`."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    layer = next(layer for layer in config["config"]["layers"] if layer["class_name"] == match)
    layer.update(changes)
    files["config.json"] = json.dumps(config).encode("utf-8")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Hand-made `.keras` files (each with toolkit metadata, so only safe_mode stands in the way) and run
    directories holding them; `marker` is the file the Lambda's code creates when it runs."""
    import keras

    root = tmp_path_factory.mktemp("hostile")
    marker = root / "LAMBDA_RAN"

    def classifier(middle=None):
        inputs = keras.Input((32, 32, 3), name="image")
        x = middle(inputs) if middle else inputs
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="dense")(x))

    files = {"benign": _save(classifier(), root / "benign.keras")}
    flag = str(marker)
    sneaky = keras.layers.Lambda(lambda t: (open(flag, "w").close(), t * 2.0)[1], name="sneaky")
    files["lambda"] = _save(classifier(sneaky), root / "lambda.keras")
    files["unknown-class"] = _save(classifier(), root / "unknown_class.keras")
    _rewrite_layer(files["unknown-class"], "GlobalAveragePooling2D", module=None, class_name="Sneaky",
                   registered_name="evil>Sneaky")
    files["os-system"] = _save(classifier(), root / "os_system.keras")
    _rewrite_layer(files["os-system"], "GlobalAveragePooling2D", module="os", class_name="system",
                   registered_name=None)
    if marker.exists():
        marker.unlink()  # building the functional model called the lambda once, symbolically
    runs = {}
    for kind, path in files.items():
        run_dir = root / "runs" / kind
        run_dir.mkdir(parents=True)
        shutil.copy(path, run_dir / "model.keras")
        write_recipe(run_dir / "recipe.yaml", root / "no_data", root / "runs")
        (run_dir / "state.json").write_text(json.dumps({"status": "complete"}))
        runs[kind] = str(run_dir)
    image = root / "photo.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    recipe = write_recipe(root / "tiny.yaml", root / "images", root / "new_runs", export={"formats": []})
    from conftest import make_image_folder

    make_image_folder(root / "images", per_class=3)
    return {"files": files, "runs": runs, "marker": marker, "image": str(image), "recipe": recipe,
            "root": root}


HOSTILE = {"lambda": "Lambda", "unknown-class": "Could not locate class 'Sneaky'",
           "os-system": "Could not locate class 'system'"}
ENTRIES = ["predict-file", "predict-run", "evaluate-run", "export-run", "backbone-file", "backbone-run"]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_unsafe_keras_file_is_refused_through_every_cli_entry(kind, entry, hostile, capsys):
    path, run_dir = hostile["files"][kind], hostile["runs"][kind]
    argv = {
        "predict-file": ["predict", path, hostile["image"]],
        "predict-run": ["predict", run_dir, hostile["image"]],
        "evaluate-run": ["evaluate", run_dir],
        "export-run": ["export", run_dir],
        "backbone-file": ["train", hostile["recipe"], f"model.backbone=file:{path}", "model.weights=pretrained"],
        "backbone-run": ["train", hostile["recipe"], f"model.backbone=run:{run_dir}", "model.weights=pretrained"],
    }[entry]
    refused(capsys, *argv, keywords=("model.keras" if "run" in entry else os.path.basename(path),
                                     "could not be loaded safely", HOSTILE[kind], "safe_mode"))
    assert not hostile["marker"].exists(), "the Lambda's Python code ran"
    assert not os.path.exists(hostile["root"] / "new_runs") or not os.listdir(hostile["root"] / "new_runs")


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_unsafe_keras_file_is_refused_by_the_python_api(kind, hostile):
    import toolkit

    for path in (hostile["files"][kind], hostile["runs"][kind]):
        with pytest.raises(ModelFileError) as error:
            toolkit.load(path)
        message = str(error.value)
        assert "\n" not in message and error.value.exit_code == 2
        assert "could not be loaded safely" in message and HOSTILE[kind] in message
    from toolkit.backbones.build import build_backbone

    with pytest.raises(ModelFileError, match="could not be loaded safely"):
        build_backbone("file:" + hostile["files"][kind], "pretrained", (32, 32, 3))
    assert not hostile["marker"].exists()


def test_the_same_model_without_the_hostile_part_loads(hostile, capsys):
    import toolkit

    model = toolkit.load(hostile["files"]["benign"])
    assert model.runtime == "keras" and len(model.predict([np.zeros((32, 32, 3), np.uint8)])[0]["top_k"]) == 3
    status, out, err = cli(capsys, "predict", hostile["runs"]["benign"], hostile["image"])
    assert status == 0 and hostile["image"] in out, err


# ----------------------------------------------------------------- no pickle


def _python_files():
    for root, _, names in os.walk(TOOLKIT):
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.join(root, name)


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "torch"}


def _dotted(node):
    """'a.b.c' of a Name/Attribute chain, or ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call, name):
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _unsafe_uses(source, filename):
    """(line, what) of every way `source` could unpickle or load untrusted data unsafely."""
    found = []
    tree = ast.parse(source, filename)
    keras_names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and (node.module or "").split(".")[0] in ("keras", "tensorflow", "tf_keras") for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and
                                                            node.module else [])
            for name in names:
                if name.split(".")[0] in UNSAFE_MODULES:
                    found.append((node.lineno, f"import {name}"))
        if isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "to_pickle", "unsafe_load", "full_load",
                                                             "enable_unsafe_deserialization", "UnsafeLoader"):
            found.append((node.lineno, node.attr))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        for keyword in node.keywords:
            if keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant) and
                                                      keyword.value.value is False):
                found.append((node.lineno, f"{name}(allow_pickle=...)"))
            if keyword.arg == "safe_mode" and not (isinstance(keyword.value, ast.Constant) and
                                                   keyword.value.value is True):
                found.append((node.lineno, f"{name}(safe_mode=...)"))
        if name.split(".")[0] in UNSAFE_MODULES:  # torch.load(...), pickle.loads(...)
            found.append((node.lineno, f"{name}(...)"))
        if name in ("yaml.load", "yaml.load_all"):
            loader = _dotted(_keyword(node, "Loader")) if _keyword(node, "Loader") is not None else ""
            if loader.rsplit(".", 1)[-1] not in ("SafeLoader", "CSafeLoader"):
                found.append((node.lineno, f"{name} without Loader=SafeLoader"))
        keras_load = last == "load_model" and ("." in name or name in keras_names)  # not the toolkit's own
        if keras_load and not (isinstance(_keyword(node, "safe_mode"), ast.Constant)
                               and _keyword(node, "safe_mode").value is True):
            found.append((node.lineno, f"{name} without safe_mode=True"))
        if name in ("eval", "exec"):
            found.append((node.lineno, f"{name}(...)"))
        if name == "__import__" or last == "import_module":  # an unsafe module named by a literal
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant) and str(argument.value).split(".")[0] in UNSAFE_MODULES:
                found.append((node.lineno, f"{name}({argument.value!r})"))
    return found


def test_the_scanner_finds_every_unsafe_pattern():
    sample = (
        "import pickle\nfrom joblib import load\nimport dill as d\nimport numpy as np\nimport yaml\n"
        "np.load('a.npy', allow_pickle=True)\nyaml.load(text)\nyaml.load(text, Loader=yaml.Loader)\n"
        "yaml.unsafe_load(text)\nkeras.saving.load_model(p, safe_mode=False)\nkeras.models.load_model(p)\n"
        "keras.config.enable_unsafe_deserialization()\npd.read_pickle(p)\neval(code)\n"
        "importlib.import_module('pickle')\ntorch.load(p)\nfrom keras.saving import load_model\nload_model(p)\n"
    )
    found = _unsafe_uses(sample, "sample.py")
    assert sorted({line for line, _ in found}) == list(range(1, 4)) + list(range(6, 17)) + [18], found
    fine = ("import yaml\nimport numpy as np\nyaml.safe_load(t)\nyaml.load(t, Loader=yaml.SafeLoader)\n"
            "np.load(p)\nnp.load(p, allow_pickle=False)\nkeras.saving.load_model(p, compile=False, safe_mode=True)\n"
            "importlib.import_module(module)\nfrom toolkit.inference import load as load_model\nload_model(p)\n")
    assert _unsafe_uses(fine, "fine.py") == []


def test_no_pickle_or_unsafe_loading_anywhere_in_the_toolkit():
    problems = []
    for path in _python_files():
        with open(path, encoding="utf-8") as f:
            source = f.read()
        problems += [f"{os.path.relpath(path, REPO)}:{line}: {what}" for line, what in _unsafe_uses(source, path)]
    assert problems == [], "\n".join(problems)


def test_archives_are_extracted_only_by_the_checked_helper():
    allowed = os.path.join(TOOLKIT, "data", "fetch.py")
    offenders = []
    for path in _python_files():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and path != allowed and \
                    node.func.attr in ("extractall", "extract", "unpack_archive", "_extract_member"):
                offenders.append(f"{os.path.relpath(path, REPO)}:{node.lineno}: {node.func.attr}")
    assert offenders == [], offenders


# ------------------------------------------------------------------ archives


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data)
    return str(path)


def _tar(path, members):
    """members: (name, bytes) files, or (name, ("symlink" | "hardlink", target)) links."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "symlink" else tarfile.LNKTYPE
                info.linkname = data[1]
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return str(path)


def _everything_under(root):
    return sorted(str(path.relative_to(root)) for path in pathlib.Path(root).rglob("*"))


@pytest.fixture
def sandbox(tmp_path):
    """tmp_path/archives (where archives are made), tmp_path/target (where they are extracted) and a sentinel
    file outside that a link could point at."""
    (tmp_path / "archives").mkdir()
    (tmp_path / "outside.txt").write_text("keep me")
    return tmp_path


ZIP_CASES = [
    ("dot-dot", "../evil.txt", "climbs out"),
    ("deep-dot-dot", "sub/../../evil.txt", "climbs out"),
    ("absolute", "{root}/evil_absolute.txt", "absolute"),
    ("backslash-dot-dot", "..\\evil.txt", "climbs out"),
]


@pytest.mark.parametrize("member, reason", [case[1:] for case in ZIP_CASES], ids=[case[0] for case in ZIP_CASES])
def test_zip_member_outside_the_target_is_refused(member, reason, sandbox):
    from toolkit.data.fetch import extract_archive, safe_extract

    member = member.format(root=sandbox)
    archive = _zip(sandbox / "archives" / "a.zip", [("fine.txt", b"ok"), (member, b"evil")])
    before = _everything_under(sandbox)
    with pytest.raises(DataError) as error:
        extract_archive(archive, str(sandbox / "target"))
    message = str(error.value)
    assert "\n" not in message and "refusing archive member" in message and reason in message
    assert _everything_under(sandbox) == before  # nothing written, not even the good member
    with zipfile.ZipFile(archive) as opened:
        with pytest.raises(DataError, match="refusing archive member"):
            safe_extract(opened, member, str(sandbox / "target" / "one.txt"))
    assert _everything_under(sandbox) == before


TAR_CASES = [
    ("dot-dot", [("../evil.txt", b"evil")], "climbs out"),
    ("absolute", [("{root}/evil_absolute.txt", b"evil")], "absolute"),
    ("symlink-dot-dot", [("link", ("symlink", "../outside.txt"))], "symbolic link"),
    ("symlink-absolute", [("link", ("symlink", "{root}/outside.txt"))], "symbolic link"),
    ("symlink-then-write-through-it", [("escape", ("symlink", "{root}")), ("escape/evil.txt", b"evil")],
     "symbolic link"),
    ("hardlink-outside", [("hard", ("hardlink", "{root}/outside.txt"))], "hard link"),
]


@pytest.mark.parametrize("members, reason", [case[1:] for case in TAR_CASES], ids=[case[0] for case in TAR_CASES])
def test_tar_member_outside_the_target_is_refused(members, reason, sandbox):
    from toolkit.data.fetch import extract_archive

    def fill(value):
        return tuple(fill(v) for v in value) if isinstance(value, tuple) else (
            value.format(root=sandbox) if isinstance(value, str) else value)

    archive = _tar(sandbox / "archives" / "a.tar.gz", [("fine.txt", b"ok")] + [fill(m) for m in members])
    before = _everything_under(sandbox)
    with pytest.raises(DataError) as error:
        extract_archive(archive, str(sandbox / "target"))
    message = str(error.value)
    assert "\n" not in message and "refusing archive member" in message and reason in message
    assert _everything_under(sandbox) == before
    assert (sandbox / "outside.txt").read_text() == "keep me"


def test_a_clean_zip_and_tar_extract_inside_the_target(sandbox):
    from toolkit.data.fetch import extract_archive

    members = [("a.txt", b"a"), ("sub/b.txt", b"b")]
    extract_archive(_zip(sandbox / "archives" / "ok.zip", members), str(sandbox / "zip"))
    extract_archive(_tar(sandbox / "archives" / "ok.tar.gz", members + [("sub/link", ("symlink", "b.txt"))]),
                    str(sandbox / "tar"))
    assert (sandbox / "zip" / "sub" / "b.txt").read_bytes() == b"b"
    assert (sandbox / "tar" / "sub" / "link").read_bytes() == b"b"
    with pytest.raises(DataError, match="not a zip or tar archive"):
        extract_archive(io.BytesIO(b"neither"), str(sandbox / "neither"), name="upload")


def test_a_model_carrying_a_hostile_tokenizer_archive_is_refused(hostile, tmp_path, capsys):
    """A translation model's metadata carries its KerasHub tokenizer as a zip: a `../` member in it is refused
    (ModelFileError, one line), through the Python helper and `toolkit predict`."""
    from toolkit.data.text import unpack_tokenizer

    escape = f"evil_{os.getpid()}_{tmp_path.name}.txt"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tokenizer.json", "{}")
        archive.writestr(zipfile.ZipInfo("../" + escape), "evil")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    with pytest.raises(ModelFileError, match="refusing archive member") as error:
        unpack_tokenizer(encoded)
    assert "\n" not in str(error.value)
    with pytest.raises(ModelFileError, match="tokenizer archive"):
        unpack_tokenizer("not base64 at all!")
    model = tmp_path / "translator.keras"
    shutil.copy(hostile["files"]["benign"], model)
    metadata = {"task": "translation", "input": "text", "max_length": 16,
                "decoding": {"method": "greedy", "max_length": 16, "beam_width": 1, "length_penalty": 0.0},
                "tokenizers": {"kind": "hub", "archive": encoded}}
    with zipfile.ZipFile(model) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files["toolkit.json"] = json.dumps(metadata).encode("utf-8")
    with zipfile.ZipFile(model, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    refused(capsys, "predict", model, "--text", "hello", keywords=("tokenizer archive", "refusing archive member"))
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), escape))


# ------------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def served(trained_run):
    from toolkit.inference import load
    from toolkit.serving import Server

    model = load(os.path.join(trained_run["run_dir"], "export", "model.onnx"))
    server = Server(model, name="tiny", max_body_bytes=64 * 1024).start(port=0)
    yield server, trained_run
    server.stop()


def _post(server, raw):
    import http.client

    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("POST", "/v1/models/tiny:predict", body=raw, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_serve_refuses_a_body_over_the_limit_before_reading_it(served):
    server, _ = served
    status, answer = _post(server, b'{"instances": [' + b"0," * 40000 + b"0]}")
    assert status == 413 and "limit" in answer["error"] and "\n" not in answer["error"]


def test_serve_refuses_a_decompression_bomb_without_a_path(served, tmp_path):
    from test_bad_input import _png_header_bomb

    server, run = served
    with open(_png_header_bomb(tmp_path / "bomb.png", 12000), "rb") as f:
        data = f.read()
    assert len(data) < 64 * 1024
    status, answer = _post(server, json.dumps({"signature_name": "toolkit", "instances": [{"b64": base64.b64encode(data).decode()}]}).encode())
    assert status == 400 and "too large" in answer["error"], answer
    assert str(tmp_path) not in answer["error"] and "BytesIO" not in answer["error"]


def test_serve_errors_never_echo_file_system_paths(served, monkeypatch):
    from toolkit.errors import DataError as UserError

    server, run = served
    secret = os.path.join(run["run_dir"], "export", "model.onnx")
    instance = json.dumps({"signature_name": "toolkit", "instances": [[[[0, 0, 0]] * 4] * 4]}).encode()

    def user_error(inputs, top_k=None, output_dir=None):
        raise UserError(f"cannot read '{secret}' (first: {secret}); run:{run['run_dir']}")

    monkeypatch.setattr(server.model, "predict", user_error)
    status, answer = _post(server, instance)
    assert status == 400 and "model.onnx" in answer["error"], answer
    assert run["run_dir"] not in answer["error"] and "/export/" not in answer["error"]

    def crash(inputs, top_k=None, output_dir=None):
        raise RuntimeError(f"segfault near {secret}")

    monkeypatch.setattr(server.model, "predict", crash)
    status, answer = _post(server, instance)
    assert status == 500 and answer == {"error": "internal error"}
