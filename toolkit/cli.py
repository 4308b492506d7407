"""The `toolkit` command: a thin layer over `toolkit.api`.

Every user error is one line on stderr and exit code 2; `--help` and
listing commands do not import TensorFlow.
"""

import argparse
import json
import os
import sys

from toolkit.reports import metrics_table, verify_table

EPILOG = "Docs: README.md and docs/ (docs/reference/cli.md lists every verb). Every verb takes --help."


def _quiet_tensorflow():
    from toolkit.quiet import import_tensorflow

    import_tensorflow()


def _parser():
    parser = argparse.ArgumentParser(
        prog="toolkit",
        description="Train, evaluate, export and serve Keras models from task recipes.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version())
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    train = verbs.add_parser(
        "train", help="train, evaluate, export and verify a recipe",
        description="Train a recipe, evaluate it on the test split, export it (SavedModel, ONNX) and verify "
                    "the exports against the Keras model. Overrides are key.path=value (YAML values).",
        epilog="Example: toolkit train recipes/image_classification/fashion_mnist.yaml train.epochs=3",
    )
    train.add_argument("recipe", nargs="?", help="recipe YAML file")
    train.add_argument("overrides", nargs="*", help="overrides like train.epochs=3 data.image_size=[64,64]")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last epoch")
    train.add_argument("--track", metavar="BACKEND", default=None,
                       help="track the run in mlflow, wandb or tensorboard (comma-separated for several; "
                            "the same as track.backend=...; see docs/tracking.md)")

    tune = verbs.add_parser(
        "tune", help="search a recipe's hyperparameters (Optuna): its tune: section",
        description="Search the hyperparameters a recipe's tune: section names (its own dotted keys) with Optuna: "
                    "TPE, random, grid or Hyperband, early stopping of bad trials on the per-epoch objective. Each "
                    "trial is an ordinary run directory under STUDY_DIR/trials (evaluate, export and predict work on "
                    "it). The study is stored in STUDY_DIR/study.db (SQLite): the same command again, after Ctrl-C "
                    "or a kill, resumes it without repeating finished trials. At the end: the trial table, "
                    "best_recipe.yaml (a plain recipe), plots, and with --final the best recipe trained on "
                    "train+validation. Every searched value is checked against the recipe schema first.",
        epilog="Example: toolkit tune recipes/image_classification/fashion_mnist.yaml --trials 12 "
               "--time-budget 15; then toolkit train saved_models/tune-fashion_mnist/best_recipe.yaml",
    )
    tune.add_argument("recipe", help="recipe YAML file with a tune: section")
    tune.add_argument("overrides", nargs="*", help="overrides like train.epochs=6 tune.algorithm=hyperband")
    tune.add_argument("--trials", type=int, default=None, help="trials in the study (default: tune.trials)")
    tune.add_argument("--time-budget", type=float, default=None, metavar="MIN",
                      help="minutes for this invocation: no trial starts after it, a running one stops at the next "
                           "epoch end (default: tune.time_budget_minutes)")
    tune.add_argument("--study", default=None, metavar="STUDY_DIR",
                      help="study directory (default: <output.dir>/tune-<recipe name>)")
    tune.add_argument("--final", action="store_true", default=None,
                      help="after the search, train the best recipe on train+validation (tune.final)")
    tune.add_argument("--track", metavar="BACKEND", default=None,
                      help="track every trial (and the study) in mlflow, wandb or tensorboard")

    runs = verbs.add_parser("runs", help="list run directories or compare runs side by side",
                            description="List the runs under a directory, or compare runs: the recipe keys that "
                                        "differ, headline metrics, time, and their training curves in one PNG.")
    runs_verbs = runs.add_subparsers(dest="runs_verb", metavar="ACTION")
    runs_verbs.required = True
    runs_list = runs_verbs.add_parser(
        "list", help="a table of the runs under DIR (default: saved_models)",
        description="One line per run directory under each DIR (searched two levels down, so tune studies' trials "
                    "show too): task, status, headline test metric, epochs, training time, exports and their "
                    "parity, recipe keys that differ from the first run of the same recipe.",
        epilog="Example: toolkit runs list saved_models --sort accuracy")
    runs_list.add_argument("dirs", metavar="DIR", nargs="*", help="directories holding runs (default: saved_models)")
    runs_list.add_argument("--sort", default=None, metavar="METRIC", help="sort by this test metric (best first)")
    runs_list.add_argument("--json", action="store_true", help="print the table as JSON")
    runs_compare = runs_verbs.add_parser(
        "compare", help="compare runs: recipe differences, metrics, curves in one PNG",
        description="Compare RUN directories: the recipe keys whose values differ, each run's test metrics, "
                    "training time and export status, and one PNG with their per-epoch curves overlaid.",
        epilog="Example: toolkit runs compare saved_models/fashion_mnist saved_models/fashion_mnist-2 "
               "--metric val_accuracy")
    runs_compare.add_argument("runs", metavar="RUN", nargs="+", help="run directories")
    runs_compare.add_argument("--metric", default=None,
                              help="history column to overlay (default: the first run's monitor, e.g. val_accuracy)")
    runs_compare.add_argument("--output", default=None,
                              help="the PNG of the curves (default: ./runs_compare.png)")
    runs_compare.add_argument("--json", action="store_true", help="print the comparison as JSON")

    evaluate = verbs.add_parser("evaluate", help="evaluate a trained run on its test split",
                                description="Evaluate a run's model.keras on a split of its recipe's data.")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--split", default="test", choices=["test", "validation", "train"])
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")

    predict = verbs.add_parser(
        "predict", help="predict with a run, .keras, SavedModel, .onnx or .tflite",
        description="Predict with MODEL: a run directory, a .keras file, an exported SavedModel directory, an .onnx "
                    "file (ONNX Runtime only, no TensorFlow) or a .tflite file. What FILES are depends on what the model takes "
                    "(toolkit list tasks): images; audio files (WAV, or FLAC, OGG, MP3 with soundfile; any sample "
                    "rate); text files with one sentence per line (or sentences with --text); a model that takes "
                    "user ids takes --user (and --item) instead. Unreadable files are reported one line each, the "
                    "others predicted, and the exit code is 2.",
        epilog="Examples: toolkit predict saved_models/fashion_mnist/export/model.onnx shoe.png; "
               "toolkit predict saved_models/nuclei_unet cells.png --output-dir masks; "
               "toolkit predict saved_models/espeak_ctc/export/model.onnx clip.wav; "
               "toolkit predict saved_models/bible_en_es --text 'In the beginning'; "
               "toolkit predict saved_models/movielens_retrieval --user 42 --k 10",
    )
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("inputs", metavar="FILES", nargs="*",
                         help="input files: images, audio files, or text files with one sentence per line")
    predict.add_argument("--text", action="append", default=[],
                         help="models that take text: a sentence (repeatable)")
    predict.add_argument("--user", action="append", default=[],
                         help="models that take user ids: a user to recommend for (repeatable)")
    predict.add_argument("--item", action="append", default=[],
                         help="models that take user ids: score this item for the --user at the same position (repeatable)")
    predict.add_argument("--top-k", "--k", "--max-detections", dest="top_k", type=int, default=None,
                         help="answers per input (classes, items, boxes; default: the model's)")
    predict.add_argument("--score-threshold", "--min-score", dest="min_score", type=float, default=None,
                         help="models that score boxes: leave out those scored below this (default: the model's)")
    predict.add_argument("--output-dir", default="predictions",
                         help="where models that answer with images (masks, overlays) write them (default: ./predictions)")
    predict.add_argument("--json", action="store_true", help="machine-readable JSON output")

    explain = verbs.add_parser(
        "explain", help="saliency maps of an image model (Grad-CAM, integrated gradients, occlusion)",
        description="Explain what a Keras image model looks at: per input, a heat map over the image (PNG) and the "
                    "raw map (.npy, float32 0..1 in the image's pixels) for the top-1 class (classifiers), each "
                    "class present (segmenters) or each kept box (detectors), and one line naming the class, its "
                    "probability and the files. MODEL is a run directory or a .keras file (exports hold no "
                    "gradients). Grad-CAM reads the backbone's deepest feature layer named in the model's metadata, "
                    "through the nested backbone. Text classifiers: integrated gradients over the token embeddings, "
                    "one line of token attributions per text (--text). See docs/explain.md.",
        epilog="Examples: toolkit explain saved_models/fashion_mnist shoe.png; "
               "toolkit explain saved_models/fashion_mnist shoe.png --method integrated_gradients --class Sneaker; "
               "toolkit explain saved_models/nuclei_unet cells.png --class 1 --output-dir maps; "
               "toolkit explain saved_models/fortunes --text 'A journey of a thousand miles'",
    )
    explain.add_argument("model", metavar="MODEL", help="a run directory or a .keras file")
    explain.add_argument("inputs", metavar="FILES", nargs="*",
                         help="image files (text models: text files with one text per line)")
    explain.add_argument("--text", action="append", default=[],
                         help="text models: a text whose tokens to attribute (repeatable)")
    from toolkit.explanations import METHODS

    explain.add_argument("--method", choices=METHODS, default=None,
                         help="default: gradcam (text models: integrated_gradients, the only one they take)")
    explain.add_argument("--class", dest="class_", default=None, metavar="NAME_OR_INDEX",
                         help="the class to explain (default: the top-1 class; segmenters: each class present; "
                              "detectors: each kept box)")
    explain.add_argument("--output-dir", default=None,
                         help="where the PNG and .npy files go (default: RUN_DIR/explain for a run or the "
                              "model.keras of one, else ./explain)")
    explain.add_argument("--steps", type=int, default=32, help="integrated gradients: interpolation steps (default 32)")
    explain.add_argument("--patch", type=int, default=None,
                         help="occlusion: patch side in model pixels (default: an eighth of the shorter side)")
    explain.add_argument("--score-threshold", "--min-score", dest="min_score", type=float, default=None,
                         help="detectors: explain only boxes scored at least this (default: the model's)")
    explain.add_argument("--json", action="store_true", help="machine-readable JSON output")

    export = verbs.add_parser("export", help="export a run (SavedModel, ONNX) and verify it",
                              description="Export a run's model.keras into RUN_DIR/export and verify parity.")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--format", dest="formats", default=None,
                        help="comma-separated formats (default: the recipe's), e.g. saved_model,onnx")

    serve = verbs.add_parser(
        "serve", help="serve an export: TF Serving REST and gRPC, KServe/Triton v2",
        description="Serve an exported model (a run or export directory, a SavedModel directory or an .onnx file) "
                    "with TensorFlow Serving's REST API (POST /v1/models/NAME:predict {\"instances\": [...]}, any "
                    "signature by signature_name; signature_name \"toolkit\" for task-level inputs and answers), "
                    "the Open Inference Protocol v2 of KServe and Triton (POST /v2/models/NAME/infer), TF Serving's "
                    "gRPC PredictionService (--grpc-port), GET /healthz, /metrics and /openapi.json. Ctrl-C or "
                    "SIGTERM drains: every accepted request is answered.",
        epilog="Example: toolkit serve saved_models/fashion_mnist/export --port 8501, then curl -d "
               "'{\"instances\": [{\"b64\": \"...\"}]}' http://127.0.0.1:8501/v1/models/fashion_mnist:predict",
    )
    serve.add_argument("model", metavar="EXPORT_DIR")
    from toolkit.runtimes import servable_runtimes

    served = servable_runtimes()
    serve.add_argument("--runtime", choices=served, default=None,
                       help=f"which export to serve (default: the first present of {', '.join(served)})")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    serve.add_argument("--port", type=int, default=8501, help="port (default 8501, TF Serving's REST port; 0: free)")
    serve.add_argument("--grpc-port", type=int, default=None,
                       help="also serve TF Serving's gRPC PredictionService on this port (8500 is TF Serving's; "
                            "0: free; default: no gRPC)")
    serve.add_argument("--name", default=None, help="model name in the URLs (default: the run name)")
    serve.add_argument("--max-batch-size", type=int, default=32, help="most instances per model call (default 32)")
    serve.add_argument("--batch-timeout-ms", type=_finite_float, default=5.0,
                       help="how long a request waits for others to fill a batch (default 5 ms)")
    serve.add_argument("--max-body-mb", type=_positive_float, default=16.0,
                       help="largest request body (default 16 MB)")
    serve.add_argument("--max-request-mb", type=_positive_float, default=128.0,
                       help="most that the instances of one request may decode to: pixels, audio samples, text "
                            "(default 128 MB; checked from image headers before decoding)")
    serve.add_argument("--max-in-flight", type=int, default=64,
                       help="most requests answered at once; beyond, 503 with Retry-After (default 64)")
    serve.add_argument("--drain-seconds", type=_positive_float, default=30.0,
                       help="on SIGTERM/Ctrl-C, how long requests in flight may take to finish (default 30)")
    serve.add_argument("--access-log", action="store_true", help="one JSON line per request on stderr")

    bench = verbs.add_parser(
        "benchmark", help="latency and throughput of each exported format",
        description="Time `predict` (preprocessing, network, decoding) of the run's Keras model and of every "
                    "artifact in its export (SavedModel, ONNX, TFLite) on the export's held-out samples, at each "
                    "batch size; print one table.",
        epilog="Example: toolkit benchmark saved_models/fashion_mnist/export --batch-sizes 1,32",
    )
    bench.add_argument("model", metavar="EXPORT_DIR", help="a run directory or its export directory")
    bench.add_argument("--batch-sizes", default="1,32", help="comma-separated batch sizes (default 1,32)")
    bench.add_argument("--repeats", type=int, default=10, help="timed calls per batch size (default 10)")
    bench.add_argument("--format", dest="formats", default=None,
                       help="comma-separated formats to time (default: all present, keras included)")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")

    verify = verbs.add_parser("verify", help="check an export against its Keras model",
                              description="Reload every artifact in EXPORT_DIR in its own runtime and compare it "
                                          "with the run's model.keras on the stored held-out samples.")
    verify.add_argument("export_dir", metavar="EXPORT_DIR")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")

    config = verbs.add_parser("config", help="print the resolved recipe",
                              description="Validate a recipe (with overrides) and print it with every default.")
    config.add_argument("recipe")
    config.add_argument("overrides", nargs="*", help="overrides like train.epochs=3")

    listing = verbs.add_parser("list", help="list recipes, backbones, tasks, formats or data sources",
                               description="List what the toolkit knows.")
    listing.add_argument("what", choices=["recipes", "backbones", "tasks", "formats", "sources"])

    data = verbs.add_parser("data", help="fetch, synthesize, list or clean offline datasets",
                            description="Fetch offline datasets into the toolkit's data cache ($TOOLKIT_HOME/data), "
                                        "write TFRecords, list and clean the cache, and the verbs tasks add (such "
                                        "as a synthetic speech corpus).")
    data_verbs = data.add_subparsers(dest="data_verb", metavar="ACTION")
    data_verbs.required = True
    data_verbs.add_parser("list", help="list the data cache with sizes",
                          description="List the entries of the data cache ($TOOLKIT_HOME/data): fetched datasets, "
                                      "the aligned Bible, one synthetic speech corpus per espeak setting (about "
                                      "225 MB each), with size, last change and what each is.")
    clean = data_verbs.add_parser(
        "clean", help="remove entries of the data cache",
        description="Remove entries of the data cache by name (as toolkit data list shows them; a folder name such "
                    "as speech removes every corpus under it), or all of it with --all. A run that needs an entry "
                    "again fetches or rebuilds it.",
        epilog="Examples: toolkit data clean speech/espeak-1a2b3c4d5e6f; toolkit data clean speech; "
               "toolkit data clean --all")
    clean.add_argument("entries", metavar="ENTRY", nargs="*", help="entry names from toolkit data list")
    clean.add_argument("--all", action="store_true", help="remove every entry")
    fetch = data_verbs.add_parser("fetch", help="download and extract a dataset",
                                  description="nuclei: the stardist wheel's sample image and mask; movielens: "
                                              "MovieLens-100k (ratings, movies, users) from the recbole wheel "
                                              "(pip download --no-deps from PyPI; only those files are kept); "
                                              "asterisk: recorded speech prompts in five languages (Debian "
                                              "packages, apt-get download, unpacked without root); ucr: "
                                              "UCR time-series sets (GunPoint, ItalyPowerDemand, ArrowHead, "
                                              "BasicMotions, OSULeaf) from the sktime wheel.")
    fetch.add_argument("dataset", choices=["asterisk", "movielens", "nuclei", "ucr"])
    to_tfrecord = data_verbs.add_parser(
        "to-tfrecord", help="write a recipe's data as sharded TFRecord files",
        description="Read the data of RECIPE through its source (with its checks and splits) and write each split "
                    "as sharded TFRecord files plus tfrecord.json into OUT_DIR (replaced only when complete); "
                    "read them back with data.source: tfrecord, data.path: OUT_DIR. A task without a record format "
                    "says so.",
        epilog="Example: toolkit data to-tfrecord recipes/image_classification/flowers.yaml data/flowers_tfrecord "
               "--shards 16",
    )
    to_tfrecord.add_argument("recipe")
    to_tfrecord.add_argument("out_dir", metavar="OUT_DIR")
    to_tfrecord.add_argument("overrides", nargs="*", help="recipe overrides like data.limit.train=1000")
    to_tfrecord.add_argument("--shards", type=int, default=8, help="files per split (default 8)")
    from toolkit.config.tasks import DATA_VERBS

    for name, verb in DATA_VERBS.items():  # verbs the task packages add (registered by `import toolkit`)
        verb_parser = data_verbs.add_parser(name, help=verb.help, description=verb.description, epilog=verb.epilog)
        for flags, options in verb.arguments:
            verb_parser.add_argument(*flags, **options)

    weights = verbs.add_parser("weights", help="manage the offline weights store",
                               description="The weights store holds pretrained backbone weights for machines "
                                           "without internet; model.weights: imagenet looks there first.")
    weights_verbs = weights.add_subparsers(dest="weights_verb", metavar="ACTION")
    weights_verbs.required = True
    weights_import = weights_verbs.add_parser(
        "import", help="check a weights file against a backbone and store it",
        description="Check that FILE (.weights.h5 or keras.applications .h5, without top) fits the backbone "
                    "and copy it into the weights store.",
        epilog="Example: toolkit weights import weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5 "
               "--backbone mobilenet_v3_small",
    )
    weights_import.add_argument("file", metavar="FILE")
    weights_import.add_argument("--backbone", required=True, help="registered backbone name")
    weights_verbs.add_parser("list", help="list stored weights", description="List the weights store.")
    return parser


def _version():
    from toolkit import __version__

    return f"toolkit {__version__}"


def main(argv=None):
    """Runs the CLI; returns the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "verb", None) == "predict" and not any(item.startswith("-") for item in extra):
        args.inputs = list(args.inputs) + extra  # files given after --text
    elif extra and getattr(args, "data_verb", None) == "to-tfrecord" and all("=" in item for item in extra):
        args.overrides = list(args.overrides) + extra  # overrides given after --shards
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from toolkit.errors import ToolkitError
    from toolkit.progress import reporting

    handler = globals()[f"_cmd_{args.verb}"]
    try:
        with reporting(_log):
            return handler(args) or 0
    except ToolkitError as error:
        _end_line()
        print(f"toolkit {args.verb}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interrupt:
        _end_line()
        run_dir = getattr(interrupt, "run_dir", None)
        hint = f"; resume with: toolkit train --resume {run_dir}" if run_dir else ""
        print(f"toolkit {args.verb}: interrupted{hint}", file=sys.stderr)
        return 130


def _end_line():
    """Ends a progress bar that was cut off mid-line on the terminal, so the message starts on its own line."""
    try:
        if sys.stdout is not None and sys.stdout.isatty():
            sys.stdout.write("\n")
            sys.stdout.flush()
    except (AttributeError, ValueError, OSError):  # a replaced or closed stdout
        pass


# --------------------------------------------------------------------- verbs


def _cmd_train(args):
    from toolkit.errors import RecipeError

    if args.resume:
        if args.recipe or args.overrides:
            raise RecipeError("--resume takes the run's saved recipe; do not pass a recipe or overrides with it")
    elif not args.recipe:
        raise RecipeError("give a recipe file (toolkit list recipes) or --resume RUN_DIR")
    if args.resume and args.track:
        raise RecipeError("--resume keeps the run's saved recipe and its track: section; do not pass --track with it")
    if not args.resume:
        from toolkit.config import load_recipe

        # fail fast, before TensorFlow loads
        recipe = load_recipe(args.recipe, overrides=_with_track(args.overrides, args.track))
    _quiet_tensorflow()
    from toolkit import api

    run = api.train(None if args.resume else recipe, resume=args.resume, log=_log)
    print(run.summary())


def _with_track(overrides, track):
    """The overrides plus `--track a,b` as track.backend."""
    if not track:
        return list(overrides)
    backends = [name.strip() for name in track.split(",") if name.strip()]
    value = backends[0] if len(backends) == 1 else "[" + ", ".join(backends) + "]"
    return [*overrides, f"track.backend={value}"]


def _log(message):
    print(f"[toolkit] {message}", flush=True)


def _cmd_tune(args):
    from toolkit.config import load_recipe
    from toolkit.errors import RecipeError

    if args.trials is not None and args.trials < 1:
        raise RecipeError(f"--trials {args.trials}: give 1 or more")
    if args.time_budget is not None and not args.time_budget > 0:
        raise RecipeError(f"--time-budget {args.time_budget}: give minutes above 0")
    recipe = load_recipe(args.recipe, overrides=_with_track(args.overrides, args.track))  # before TensorFlow
    _quiet_tensorflow()
    from toolkit.tuning import tune

    study = tune(recipe, trials=args.trials, time_budget=args.time_budget, study_dir=args.study,
                 final=args.final, log=_log)
    print(study.summary())


def _cmd_runs(args):
    from toolkit.run_table import compare_runs, format_comparison, format_runs, list_runs

    if args.runs_verb == "list":
        rows = list_runs(args.dirs or ["saved_models"], sort=args.sort)
        print(json.dumps(rows, indent=2, default=_json_value) if args.json else format_runs(rows))
        return None
    comparison = compare_runs(args.runs, metric=args.metric, output=args.output or "runs_compare.png")
    print(json.dumps(comparison, indent=2, default=_json_value) if args.json else format_comparison(comparison))
    return None


def _cmd_evaluate(args):
    _quiet_tensorflow()
    from toolkit import api

    metrics = api.evaluate(args.run_dir, args.split)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return
    print(f"{args.split} split of {os.path.abspath(args.run_dir)}")
    print(metrics_table(metrics))


def _cmd_predict(args):
    from toolkit.errors import ToolkitError

    if args.top_k is not None and args.top_k < 1:
        raise ToolkitError("--top-k must be 1 or more")
    refused = _refused_files(args.inputs)
    if args.inputs and len(refused) == len(args.inputs):  # nothing to predict: said before the model is loaded
        for message in refused:
            print(f"toolkit predict: error: {message}", file=sys.stderr)
        return 2
    if _needs_tensorflow(args.model):
        _quiet_tensorflow()
    from toolkit.inference import load

    model = load(args.model)
    inputs = list(args.inputs)
    if model.metadata.get("input") == "text":
        inputs = list(args.text) + _read_lines(args.inputs)
    elif args.text:
        raise ToolkitError(f"--text: {args.model} is a {model.metadata['task']} model; give input files instead")
    if model.metadata.get("input") == "user":
        if args.inputs:
            raise ToolkitError("predict: a recommender takes --user ID [--item ID], not files")
        if args.item and len(args.item) != len(args.user):
            raise ToolkitError(f"--item: give one --item per --user ({len(args.user)} users, {len(args.item)} items)")
        inputs = [{"user": u, "item": i} for u, i in zip(args.user, args.item)] if args.item else list(args.user)
    elif args.user or args.item:
        raise ToolkitError(f"--user/--item: {args.model} is a {model.metadata['task']} model, not a recommender")
    if not inputs:
        hint = {"text": " or --text", "user": " (recommenders: --user ID)"}.get(model.metadata.get("input"), "")
        raise ToolkitError("predict: give input files" + hint)
    errors = []
    results = model.predict(inputs, top_k=args.top_k, output_dir=args.output_dir, errors=errors,
                            min_score=args.min_score)
    for result in results:  # e.g. a text longer than the model's max_length, translated from its start
        if result.get("warning"):
            print(f"toolkit predict: warning: {str(result.get('input'))[:60]!r}: {result['warning']}", file=sys.stderr)
    for note in dict.fromkeys(result["note"] for result in results if result.get("note")):  # once each
        print(f"toolkit predict: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"model": os.path.abspath(args.model), "runtime": model.runtime, "predictions": results,
                          **({"errors": [{"input": str(item), "error": message} for item, message in errors]}
                             if errors else {})}, indent=2, default=_json_value))
    else:
        for result in results:
            print(model.format(result))
    for _, message in errors:  # the readable inputs were predicted; each unreadable one is one line
        print(f"toolkit predict: error: {message}", file=sys.stderr)
    return 2 if errors else None


def _cmd_explain(args):
    from toolkit.errors import ToolkitError

    if args.steps < 1:
        raise ToolkitError("--steps must be 1 or more")
    if args.patch is not None and args.patch < 1:
        raise ToolkitError("--patch must be 1 or more")
    refused = _refused_files(args.inputs)
    if args.inputs and len(refused) == len(args.inputs):  # nothing to explain: said before the model is loaded
        for message in refused:
            print(f"toolkit explain: error: {message}", file=sys.stderr)
        return 2
    from toolkit import inference
    from toolkit.runtimes import runtime_of

    if runtime_of(args.model).name != "keras":  # one line, before TensorFlow loads
        raise ToolkitError(inference._export_refusal(args.model, runtime_of(args.model).name))
    kind = inference.explain_metadata(args.model).get("input")
    inputs = list(args.inputs)
    if kind == "text":
        inputs = list(args.text) + _read_lines(args.inputs)
    elif args.text:
        raise ToolkitError(f"--text: {args.model} is not a text model; give image files instead")
    if not inputs:
        raise ToolkitError("explain: give image files" + (" or --text" if kind == "text" else ""))
    _quiet_tensorflow()
    output_dir = args.output_dir or inference.default_explain_dir(args.model)
    errors = []
    results = inference.explain(args.model, inputs, method=args.method, class_=args.class_,
                                output_dir=output_dir, steps=args.steps, patch=args.patch, errors=errors,
                                min_score=args.min_score)
    if args.json:
        for result in results:
            for entry in result["explanations"]:
                entry.pop("map", None)
        method = results[0]["method"] if results else args.method
        print(json.dumps({"model": os.path.abspath(args.model), "method": method, "output_dir": output_dir,
                          "explanations": results,
                          **({"errors": [{"input": str(item), "error": message} for item, message in errors]}
                             if errors else {})}, indent=2, default=_json_value))
    else:
        for result in results:
            print(_explain_line(result))
    for _, message in errors:
        print(f"toolkit explain: error: {message}", file=sys.stderr)
    return 2 if errors else None


def _explain_line(result):
    """One line per input: the class (or box) explained, its probability and the files written."""
    if not result["explanations"]:
        return f"{result['input']}: nothing to explain (no box found)"
    parts = []
    for entry in result["explanations"]:
        if "tokens" in entry:  # a text model: each token with its attribution
            text = result["input"] if len(result["input"]) <= 40 else result["input"][:37] + "..."
            tokens = " ".join(f"{t['token']}({t['attribution']:+.2f})" for t in entry["tokens"][:40])
            more = f" (+{len(entry['tokens']) - 40} tokens)" if len(entry["tokens"]) > 40 else ""
            return f"{text!r}: {result['method']} of {entry['class']} {entry['score']:.3f}: {tokens}{more}"
        box = f" [{', '.join(f'{v:.0f}' for v in entry['box'])}]" if "box" in entry else ""
        files = f" -> {entry['overlay']}, {os.path.basename(entry['npy'])}" if "overlay" in entry else ""
        parts.append(f"{entry['class']} {entry['score']:.3f}{box}{files}")
    return f"{result['input']}: {result['method']} of " + "; ".join(parts)


def _needs_tensorflow(path, runtime=None):
    """Whether the model at `path` (in `runtime`, when given) loads with TensorFlow (ONNX Runtime does not)."""
    from toolkit.runtimes import RUNTIMES

    if runtime:
        return RUNTIMES.get(runtime).tensorflow
    return not any(not r.tensorflow and r.suffix and path.endswith(r.suffix) for _, r in RUNTIMES.items())


def _json_value(value):
    """JSON for values a result may hold besides plain ones (NumPy arrays and numbers)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _refused_files(paths):
    """One-line messages for the input files refused from `stat` alone (devices, FIFOs, files over the input size
    limit, names with control characters), checked in microseconds before any model is loaded; missing files are
    left to the reader of each model, which says what it expected."""
    from toolkit.data.files import check_input_file
    from toolkit.errors import DataError

    messages = []
    for path in paths:
        try:
            if os.path.lexists(path):
                check_input_file(path)
        except DataError as error:
            messages.append(str(error))
    return messages


def _read_lines(paths):
    """Non-empty lines of UTF-8 text files (the input of models that take text)."""
    from toolkit.data.files import check_input_file
    from toolkit.errors import DataError

    lines = []
    for path in paths:
        if os.path.lexists(path):
            check_input_file(path)
        try:
            with open(path, encoding="utf-8") as f:
                lines.extend(line.strip() for line in f if line.strip())
        except FileNotFoundError:
            raise DataError(f"{path}: no such file (give sentences with --text, or a UTF-8 file of lines)")
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8")
    return lines


def _finite_float(text):
    """argparse type: a finite number (not nan, not inf)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number")
    return value


def _positive_float(text):
    """argparse type: a finite number above 0."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
    return value


def _cmd_serve(args):
    from toolkit.errors import ToolkitError

    if not 0 <= args.port <= 65535:
        raise ToolkitError(f"--port {args.port}: give 0-65535 (0 picks a free port)")
    if args.grpc_port is not None and not 0 <= args.grpc_port <= 65535:
        raise ToolkitError(f"--grpc-port {args.grpc_port}: give 0-65535 (0 picks a free port)")
    if args.max_batch_size < 1 or args.batch_timeout_ms < 0 or args.max_in_flight < 1:
        raise ToolkitError("--max-batch-size and --max-in-flight must be >= 1, --batch-timeout-ms >= 0")
    if _needs_tensorflow(args.model, args.runtime) or args.grpc_port is not None:  # gRPC's protos are TF's
        _quiet_tensorflow()
    from toolkit.serving import serve_forever


    serve_forever(args.model, runtime=args.runtime, host=args.host, port=args.port, name=args.name,
                  max_batch_size=args.max_batch_size, batch_timeout_ms=args.batch_timeout_ms,
                  max_body_mb=args.max_body_mb, max_request_mb=args.max_request_mb, max_in_flight=args.max_in_flight,
                  drain_seconds=args.drain_seconds, access_log=args.access_log, grpc_port=args.grpc_port,
                  log=lambda line: print(line, flush=True))


def _cmd_benchmark(args):
    from toolkit.errors import ToolkitError

    try:
        sizes = [int(size) for size in args.batch_sizes.split(",") if size.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1 or args.repeats < 1:
        raise ToolkitError(f"--batch-sizes {args.batch_sizes!r} / --repeats {args.repeats}: give positive integers, "
                           "e.g. --batch-sizes 1,32 --repeats 10")
    _quiet_tensorflow()
    from toolkit.benchmark import benchmark, format_table

    formats = [f.strip() for f in args.formats.split(",")] if args.formats else None
    result = benchmark(args.model, batch_sizes=tuple(sizes), repeats=args.repeats, formats=formats)
    print(json.dumps(result, indent=2) if args.json else format_table(result))


def _cmd_export(args):
    _quiet_tensorflow()
    from toolkit import api

    report = api.export(args.run_dir, args.formats, log=_log)
    print(verify_table(report))
    print(f"\nexported to {os.path.join(os.path.abspath(args.run_dir), 'export')}")


def _cmd_verify(args):
    _quiet_tensorflow()
    from toolkit import api
    from toolkit.errors import ParityError

    try:
        report = api.verify(args.export_dir)
    except ParityError:
        path = os.path.join(args.export_dir, "verify.json")
        if os.path.isfile(path) and not args.json:
            with open(path, encoding="utf-8") as f:
                print(verify_table(json.load(f)))
        raise
    print(json.dumps(report, indent=2) if args.json else verify_table(report) + "\n\nall exports match")


def _cmd_config(args):
    from toolkit.config import load_recipe, recipe_to_yaml

    print(recipe_to_yaml(load_recipe(args.recipe, overrides=args.overrides)), end="")


def recipes_dirs():
    """Directories searched for shipped recipes (the checkout's and ./recipes)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = [os.path.join(here, "recipes"), os.path.abspath("recipes")]
    return [d for i, d in enumerate(dirs) if os.path.isdir(d) and d not in dirs[:i]]


def _cmd_list(args):
    if args.what == "recipes":
        import yaml

        for directory in recipes_dirs():
            for root, _, files in sorted(os.walk(directory)):
                for name in sorted(files):
                    if name.endswith((".yaml", ".yml")):
                        path = os.path.join(root, name)
                        with open(path, encoding="utf-8") as f:
                            data = yaml.safe_load(f) or {}
                        rel = os.path.relpath(path)
                        print(f"{rel:<56} {data.get('description', '')}")
    elif args.what == "backbones":
        from toolkit.backbones.registry import BACKBONES
        from toolkit.backbones.weights import stored_weights

        print(f"{'name':<20} {'params':>7} {'input':>9} {'min':>4}  {'weights':<8} description")
        for name, spec in BACKBONES.items():
            low, high = spec.input_range
            stored = "stored" if stored_weights(name) else ("online" if spec.weights_url else "none")
            print(f"{name:<20} {spec.params:>7} {f'{low:g}..{high:g}':>9} {spec.min_input_size:>4}  {stored:<8} "
                  f"{spec.description}")
        print("\nalso: hub:<KerasHub preset or dir>, file:<backbone.keras>, run:<run dir>")
    elif args.what == "tasks":
        from toolkit.tasks import TASKS

        for name, cls in TASKS.items():
            print(f"{name:<24} {(cls.__doc__ or '').strip().splitlines()[0]}")
    elif args.what == "formats":
        from toolkit.exporters.formats import FORMATS

        for name, spec in FORMATS.items():
            options = ", ".join(f"{k}={v.default}" for k, v in spec.options.model_fields.items()) or "-"
            print(f"{name:<15} {spec.artifact:<21} options: {options:<27} {spec.description}")
        from toolkit.tasks import PREDICTORS

        for task, cls in PREDICTORS.items():
            for name, note in cls.export_notes.items():
                print(f"  {task} {name}: {note}")
    elif args.what == "sources":
        from toolkit.tasks import TASKS

        for task, cls in TASKS.items():
            for name, function in cls.sources.items():
                print(f"{task:<22} {name:<16} {' '.join((function.__doc__ or '').split())}")


def _cmd_data(args):
    if args.data_verb in ("list", "clean"):
        from toolkit.data.cache import cache_entries, format_entries, human_size, remove_entries
        from toolkit.errors import ToolkitError

        if args.data_verb == "list":
            print(format_entries(cache_entries()))
            return None
        if args.all == bool(args.entries):
            raise ToolkitError("data clean: give entry names (toolkit data list) or --all, not both or neither")
        removed = remove_entries([entry.name for entry in cache_entries()] if args.all else args.entries)
        for entry in removed:
            print(f"removed {entry.name} ({human_size(entry.size)})")
        print(f"freed {human_size(sum(entry.size for entry in removed))}" if removed else "nothing to remove")
        return None
    from toolkit.config.tasks import DATA_VERBS
    from toolkit.registry import resolve

    if args.data_verb in DATA_VERBS:
        return resolve(DATA_VERBS.get(args.data_verb).handler)(args, _log)
    if args.data_verb == "to-tfrecord":
        _quiet_tensorflow()
        from toolkit.config import load_recipe
        from toolkit.data.tfrecord import write_tfrecords

        meta = write_tfrecords(load_recipe(args.recipe, overrides=args.overrides), args.out_dir, args.shards,
                               log=_log)
        print(f"{sum(meta['splits'].values())} examples in {args.out_dir}; read them with data.source: tfrecord, "
              f"data.path: {args.out_dir}")
        return None
    from toolkit.data.fetch import fetch_dataset

    paths = fetch_dataset(args.dataset)
    print(f"{args.dataset}: {', '.join(sorted(paths.values()))}")


def _cmd_weights(args):
    from toolkit.backbones import weights

    if args.weights_verb == "list":
        directory = weights.store_dir()
        names = sorted(n for n in os.listdir(directory) if n.endswith(".h5")) if os.path.isdir(directory) else []
        print(f"weights store: {directory}")
        for name in names:
            print(f"  {name}")
        if not names:
            print("  (empty)")
        return
    _quiet_tensorflow()
    path = weights.import_weights(args.file, args.backbone)
    print(f"stored {args.file} as {path}; recipes with model.backbone: {args.backbone} and "
          "model.weights: imagenet now load it")
