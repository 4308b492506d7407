"""The network selection behind the text classification recipes (docs/text-classification.md#results).

    python bench/select_text_classifier.py bible_genre        # or fortunes; one JSON line per network

Each network of bench/text_classification_selection.json (recipe overrides) is trained on the recipe's data
and tokenizer with the task's own model builder, inputs and optimizer, one `fit` epoch at a time; after each
epoch the validation macro-F1 is computed, and the test figures are those of the epoch with the best
validation macro-F1. Seeded (42) like the recipes.
"""
import json
import os
import sys
import time

import keras

from toolkit.classification_metrics import classification_metrics
from toolkit.config import load_recipe
from toolkit.tasks import make_task
from toolkit.training.trainer import make_optimizer

HERE = os.path.dirname(os.path.abspath(__file__))
name = sys.argv[1]
recipe_path = os.path.join(os.path.dirname(HERE), "recipes", "text_classification", f"{name}.yaml")
with open(os.path.join(HERE, "text_classification_selection.json"), encoding="utf-8") as f:
    configs = json.load(f)[name]
base = load_recipe(recipe_path)
task = make_task(base)
assert task.data.splits['train']  # reads the data once
for split in ("train", "validation", "test"):
    task.split_ids(split)
for label, changes in configs.items():
    recipe = load_recipe(recipe_path, overrides=[f"{k}={json.dumps(v)}" for k, v in changes.items()])
    task.recipe = recipe
    keras.utils.set_random_seed(42)
    model = task.build_model()
    train = task.build_inputs("train", training=True)
    steps = {"per_epoch": int(train.cardinality()), "total": int(train.cardinality()) * recipe.train.epochs}
    model.compile(make_optimizer(recipe.train.optimizer, recipe.train.schedule, recipe.train.optimizer.learning_rate, steps),
                  loss=task.build_losses(), metrics=task.build_metrics())
    best, rows = None, []
    started = time.time()
    for epoch in range(recipe.train.epochs):
        model.fit(train, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
        val = classification_metrics(task.probabilities(model, "validation"), task.targets(task.data.splits["validation"]), task.class_names)
        rows.append(round(val["macro_f1"], 4))
        if best is None or val["macro_f1"] > best[0]:
            test = classification_metrics(task.probabilities(model, "test"), task.targets(task.data.splits["test"]), task.class_names)
            best = (val["macro_f1"], epoch + 1, round(test["macro_f1"], 4), round(test["accuracy"], 4))
    print(json.dumps({"name": label, "val_macro_f1_per_epoch": rows, "best_val_epoch": best[1], "test_macro_f1": best[2],
                      "test_accuracy": best[3], "seconds": round(time.time() - started), "params": model.count_params()}), flush=True)
