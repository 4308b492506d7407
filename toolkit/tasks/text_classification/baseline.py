"""The classic baseline every text classification run reports beside its model: scikit-learn TF-IDF features and a
logistic regression, trained on the same train split and scored on the same test split in the same run.

Word 1-2 grams (sublinear term frequency, at most `max_features`), L2-regularised logistic regression
(one-vs-rest for multi-label data) with its inverse regularisation `C` chosen on the validation split from
`C_values` (the first value when there is no validation split). A strong baseline for topic-like labels.

Example:

>>> from toolkit.tasks.text_classification.baseline import tfidf_logistic_regression
>>> texts = ["good film", "great film", "bad film", "awful film"] * 5
>>> labels = [[1, 0], [1, 0], [0, 1], [0, 1]] * 5
>>> result = tfidf_logistic_regression(texts, labels, texts[:4], labels[:4], texts[:4])
>>> result["probabilities"].argmax(axis=1).tolist(), result["C"]
([0, 0, 1, 1], 1.0)
"""

import time

import numpy as np


def tfidf_logistic_regression(train_texts, train_targets, validation_texts, validation_targets, test_texts,
                              multi_label=False, C_values=(1.0, 10.0, 100.0), max_features=200000, seed=0):
    """Fits TF-IDF + logistic regression; returns its test probabilities and what was chosen.

    Args:
        train_texts, validation_texts, test_texts: lists of str.
        train_targets, validation_targets: float arrays [n, classes]: one-hot (single-label) or multi-hot.
        multi_label: bool. One binary regression per class instead of a softmax over classes.
        C_values: inverse regularisation strengths tried; the best on validation is kept (macro-F1 for
            multi-label, accuracy otherwise).
        max_features: int. Vocabulary cap of the TF-IDF features.
        seed: int.

    Returns:
        dict: "probabilities" [test, classes], "C", "features", "seconds", "name".
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    started = time.time()
    train_targets = np.asarray(train_targets)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=max_features)
    train_features = vectorizer.fit_transform(train_texts)
    count = train_targets.shape[1]

    def fit(c):
        if multi_label:
            model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=1000, random_state=seed))
            present = train_targets.sum(axis=0) > 0  # a class without positives cannot be fitted
            model.fit(train_features, train_targets[:, present])
            return model, present
        labels = train_targets.argmax(axis=1)
        return LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(train_features, labels), None

    def probabilities(fitted, texts):
        model, present = fitted
        features = vectorizer.transform(texts)
        scores = np.zeros((len(texts), count), np.float32)
        if multi_label:
            scores[:, present] = model.predict_proba(features)
        else:
            scores[:, model.classes_] = model.predict_proba(features)
        return scores

    chosen, best = C_values[0], None
    if validation_texts and len(C_values) > 1:
        truth = np.asarray(validation_targets)
        for c in C_values:
            scores = probabilities(fit(c), validation_texts)
            if multi_label:
                predicted = scores >= 0.5
                f1 = [_f1(predicted[:, k], truth[:, k] > 0.5) for k in range(count)]
                value = float(np.mean(f1))
            else:
                value = float(np.mean(scores.argmax(axis=1) == truth.argmax(axis=1)))
            if best is None or value > best:
                chosen, best = c, value
    fitted = fit(chosen)
    return {"name": "TF-IDF word 1-2 grams + logistic regression (scikit-learn)",
            "probabilities": probabilities(fitted, test_texts), "C": float(chosen),
            "features": int(len(vectorizer.vocabulary_)), "seconds": round(time.time() - started, 1)}


def _f1(predicted, truth):
    true_positive = float(np.sum(predicted & truth))
    denominator = float(np.sum(predicted) + np.sum(truth))
    return 2 * true_positive / denominator if denominator else 0.0
