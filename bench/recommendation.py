"""Recommendation benchmark for `make bench` (MovieLens-100k, offline from the recbole wheel).

1. Rating, the classic protocol: `movielens_rating.yaml` on each of the 5
   folds (data.fold=0..4), RMSE/MAE on the held-out fold, beside the
   user/item-bias baseline fitted on the same training folds (reported in
   each run's metrics). Literature, same protocol (Surprise's benchmark
   table): SVD 0.936, SVD++ 0.922. Target: mean RMSE <= 0.91, all five folds
   within 15 minutes of training on 2 CPU cores.
2. Retrieval, per-user leave-last-out: `movielens_retrieval.yaml`,
   Recall/NDCG/hit rate @10 over all items (training items excluded) beside
   the most-popular and bias baselines on the same split. Target: Recall@10
   >= 1.5x most-popular within 15 minutes.
"""

import json
import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORK = os.path.join(HERE, "_work")
RATING = os.path.join(REPO, "recipes", "recommendation", "movielens_rating.yaml")
RETRIEVAL = os.path.join(REPO, "recipes", "recommendation", "movielens_retrieval.yaml")
LITERATURE = {"svd": 0.936, "svd++": 0.922, "source": "Surprise benchmark table, MovieLens-100k, 5-fold CV"}


def bench_recommendation(quick=False):
    """Trains the rating recipe on every fold and the retrieval recipe once.

    Args:
        quick: bool. Two folds, two epochs (a smoke test).
    """
    from segmentation import toolkit_train

    small = ["train.epochs=2"] if quick else []
    folds = []
    for fold in range(2 if quick else 5):
        # Fold 0 is exported and verified like any run; the other folds only need their metrics.
        extra = [] if fold == 0 else ["export.formats=[]"]
        run_dir, seconds, metrics = toolkit_train(RATING, os.path.join(WORK, "recommendation"), f"data.fold={fold}",
                                                  f"name=movielens_rating_fold{fold}", *small, *extra)
        test = metrics["test"]
        folds.append({"fold": fold, "run": run_dir, "rmse": test["rmse"], "mae": test["mae"],
                      "bias_rmse": test["baselines"]["bias"]["rmse"], "bias_mae": test["baselines"]["bias"]["mae"],
                      "train_seconds": metrics["train_seconds"], "wall_seconds": round(seconds, 1)})
    rmse = [f["rmse"] for f in folds]
    rating = {
        "folds": folds, "rmse_mean": statistics.mean(rmse), "rmse_std": statistics.pstdev(rmse),
        "mae_mean": statistics.mean(f["mae"] for f in folds),
        "bias_rmse_mean": statistics.mean(f["bias_rmse"] for f in folds),
        "train_seconds": round(sum(f["train_seconds"] for f in folds), 1), "literature": LITERATURE,
        "targets": {"rmse": 0.91, "train_seconds": 900},
    }
    rating["passed"] = rating["rmse_mean"] <= 0.91 and rating["train_seconds"] <= 900
    run_dir, seconds, metrics = toolkit_train(RETRIEVAL, os.path.join(WORK, "recommendation"), *small)
    test = metrics["test"]
    popular, bias = test["baselines"]["most_popular"], test["baselines"]["bias"]
    keys = ("recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10")
    retrieval = {
        "run": run_dir, "train_seconds": metrics["train_seconds"], "wall_seconds": round(seconds, 1),
        "users": test.get("users"), **{k: test[k] for k in keys},
        "most_popular": {k: popular[k] for k in keys}, "bias": {k: bias[k] for k in keys},
        "ratio_to_most_popular": test["recall@10"] / max(popular["recall@10"], 1e-9),
        "targets": {"ratio_to_most_popular": 1.5, "train_seconds": 900},
    }
    retrieval["passed"] = retrieval["ratio_to_most_popular"] >= 1.5 and metrics["train_seconds"] <= 900
    return {"rating": rating, "retrieval": retrieval}


def table(results):
    r = results.get("recommendation")
    if not r:
        return ""
    rating, retrieval = r["rating"], r["retrieval"]
    return "\n".join([
        f"recommendation rating, MovieLens-100k {len(rating['folds'])}-fold RMSE {rating['rmse_mean']:.4f} "
        f"(+/- {rating['rmse_std']:.4f}), MAE {rating['mae_mean']:.4f}; bias baseline {rating['bias_rmse_mean']:.4f}; "
        f"literature SVD {LITERATURE['svd']}, SVD++ {LITERATURE['svd++']}; training {rating['train_seconds']:.0f} s; "
        f"target <= 0.91 in <= 900 s: {'ok' if rating['passed'] else 'MISSED'}",
        f"recommendation retrieval, leave-last-out Recall@10 {retrieval['recall@10']:.4f} / NDCG@10 "
        f"{retrieval['ndcg@10']:.4f}; most popular {retrieval['most_popular']['recall@10']:.4f} / "
        f"{retrieval['most_popular']['ndcg@10']:.4f}; bias {retrieval['bias']['recall@10']:.4f}; ratio "
        f"{retrieval['ratio_to_most_popular']:.2f} (target >= 1.5) in {retrieval['train_seconds']:.0f} s: "
        f"{'ok' if retrieval['passed'] else 'MISSED'}",
    ])


if __name__ == "__main__":
    import sys

    sys.path.insert(0, HERE)
    print(json.dumps(bench_recommendation("--quick" in sys.argv), indent=2))
