"""Probes on frozen embeddings, as scikit-learn estimators: k-NN, linear and few-shot MLP heads.

Each probe is ``fit(X, y)`` / ``predict(X)`` (and ``predict_proba`` for classification), with its
hyper-parameters in ``__init__`` and what it learned in attributes ending in ``_``, so a user can swap one
for another or put one in a scikit-learn pipeline. They are named configurations of scikit-learn
(no reimplementation): every evaluation in the project uses the same ones, on standardised inputs.
``task`` is ``"regression"`` or ``"classification"``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

__all__ = ["KNNProbe", "LinearProbe", "MLPProbe", "PROBES", "knn_regressor", "linear_classifier",
           "linear_regressor", "pca_baseline", "split_indices", "held_out_ids"]

TASKS = ("regression", "classification")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


class _Probe(BaseEstimator):
    """Shared predict / predict_proba over the fitted ``estimator_``."""

    task: str

    def predict(self, X) -> np.ndarray:
        return self.estimator_.predict(np.asarray(X, np.float64))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, n_classes) in the order of ``classes_``."""
        if self.task != "classification":
            raise ValueError("predict_proba is defined for classification probes only")
        return self.estimator_.predict_proba(np.asarray(X, np.float64))

    def _set_classes(self, y) -> None:
        if self.task == "classification":
            self.classes_ = np.unique(y)


class KNNProbe(_Probe):
    """Zero-shot k-NN: distance-weighted mean (or vote) of the labels of the nearest training embeddings.

    Inputs are standardised; with ``metric="cosine"`` they are then L2-normalised, so Euclidean distance
    ranks neighbours by cosine similarity (what contrastive training optimises). ``k`` is chosen from
    ``k_grid`` by ``cv``-fold cross-validation on the training set only (R^2 or accuracy).

    Attributes
    ----------
    k_ : int
        The chosen number of neighbours.
    cv_scores_ : dict
        Mean cross-validated score of each k tried.
    estimator_ : sklearn.pipeline.Pipeline
        The fitted scaler, normaliser and k-NN model.
    """

    def __init__(self, task: str = "regression", k_grid=(4, 8, 16, 32, 64), metric: str = "cosine", cv: int = 5,
                 seed: int = 0):
        self.task, self.k_grid, self.metric, self.cv, self.seed = task, k_grid, metric, cv, seed

    def fit(self, X, y):
        _check_task(self.task)
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', got {self.metric!r}")
        X, y = np.asarray(X, np.float64), np.asarray(y)
        knn = (KNeighborsRegressor if self.task == "regression" else KNeighborsClassifier)(weights="distance")
        steps = [StandardScaler()] + ([Normalizer()] if self.metric == "cosine" else []) + [knn]
        pipeline = make_pipeline(*steps)
        folds = min(self.cv, len(y)) if self.task == "regression" else min(self.cv, np.bincount(
            np.unique(y, return_inverse=True)[1]).min())
        largest = len(y) - int(np.ceil(len(y) / max(folds, 2)))  # training-fold size bounds k
        grid = sorted({min(int(k), largest) for k in self.k_grid if k >= 1}) or [1]
        self._set_classes(y)
        if folds < 2 or len(grid) == 1:
            self.k_, self.cv_scores_ = grid[0], {}
            self.estimator_ = pipeline.set_params(**{f"{steps[-1].__class__.__name__.lower()}__n_neighbors":
                                                     min(grid[0], len(y))}).fit(X, y)
            return self
        splitter = (KFold if self.task == "regression" else StratifiedKFold)(folds, shuffle=True,
                                                                            random_state=self.seed)
        name = f"{steps[-1].__class__.__name__.lower()}__n_neighbors"
        search = GridSearchCV(pipeline, {name: grid}, cv=splitter,
                              scoring="r2" if self.task == "regression" else "accuracy").fit(X, y)
        self.k_ = int(search.best_params_[name])
        self.cv_scores_ = {int(k): float(s) for k, s in zip(grid, search.cv_results_["mean_test_score"])}
        self.estimator_ = search.best_estimator_
        return self


class LinearProbe(_Probe):
    """Ridge regression or logistic regression on standardised inputs, penalty chosen by cross-validation
    on the training set (ridge: efficient leave-one-out over ``alphas``; logistic: ``cv`` folds over ``Cs``).

    Attributes
    ----------
    estimator_ : sklearn.pipeline.Pipeline
        The fitted scaler and linear model.
    """

    def __init__(self, task: str = "regression", alphas=tuple(np.logspace(-3, 3, 13)), Cs: int = 7, cv: int = 3,
                 max_iter: int = 2000, seed: int = 0):
        self.task, self.alphas, self.Cs, self.cv, self.max_iter, self.seed = task, alphas, Cs, cv, max_iter, seed

    def fit(self, X, y):
        _check_task(self.task)
        X, y = np.asarray(X, np.float64), np.asarray(y)
        self._set_classes(y)
        if self.task == "regression":
            model = RidgeCV(alphas=np.asarray(self.alphas))
        elif np.bincount(np.unique(y, return_inverse=True)[1]).min() >= self.cv:
            model = LogisticRegressionCV(Cs=self.Cs, cv=self.cv, max_iter=self.max_iter, random_state=self.seed)
        else:  # too few labels per class to cross-validate (few-shot): the default penalty
            model = LogisticRegression(max_iter=self.max_iter)
        self.estimator_ = make_pipeline(StandardScaler(), model).fit(X, y)
        return self


class MLPProbe(_Probe):
    """Few-shot MLP head (AstroCLIP's [64, 64]) on standardised inputs; regression targets are standardised
    too. With enough labels (``early_stopping_min`` or more) a seeded 10 % of the training set stops training.

    Attributes
    ----------
    estimator_ : sklearn.pipeline.Pipeline
        The fitted scaler and MLP.
    """

    def __init__(self, task: str = "regression", hidden=(64, 64), alpha: float = 1e-3, max_iter: int = 300,
                 early_stopping_min: int = 100, seed: int = 0):
        self.task, self.hidden, self.alpha, self.max_iter = task, hidden, alpha, max_iter
        self.early_stopping_min, self.seed = early_stopping_min, seed

    def fit(self, X, y):
        _check_task(self.task)
        X, y = np.asarray(X, np.float64), np.asarray(y)
        self._set_classes(y)
        options = dict(hidden_layer_sizes=tuple(self.hidden), alpha=self.alpha, max_iter=self.max_iter,
                       early_stopping=len(y) >= self.early_stopping_min, random_state=self.seed)
        if self.task == "regression":
            model = TransformedTargetRegressor(MLPRegressor(**options), transformer=StandardScaler())
        else:
            model = MLPClassifier(**options)
        self.estimator_ = make_pipeline(StandardScaler(), model).fit(X, y)
        return self


PROBES = {"knn": KNNProbe, "linear": LinearProbe, "mlp": MLPProbe}


def knn_regressor(k: int = 16):
    """Zero-shot k-NN regression with a fixed k: distance-weighted mean label of the k most cosine-similar
    embeddings (unstandardised; the figures of the experiments scripts)."""
    return make_pipeline(Normalizer(), KNeighborsRegressor(n_neighbors=k, weights="distance"))


def linear_classifier(C: float = 1.0, max_iter: int = 2000):
    """Logistic-regression probe on standardised embeddings."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def linear_regressor():
    """Ridge probe with the penalty chosen by efficient leave-one-out CV."""
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


def pca_baseline(n_components: int = 64, seed: int = 0) -> PCA:
    """Pixels -> PCA: the 'no learning beyond linear' baseline for a probe."""
    return PCA(n_components=n_components, random_state=seed)


def split_indices(n: int, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/test split of range(n)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def held_out_ids(survey_ids, test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """The held-out objects of a survey: the test part of :func:`split_indices` over its ids in survey order.

    The pretraining stages of ``astroembed demo`` train on the other part, so a report that holds out these
    objects never scores a model on galaxies it was pretrained on. ``astroembed evaluate`` on a survey and
    the demo's report both call this, so the two cannot drift apart.
    """
    survey_ids = np.asarray(survey_ids)
    return survey_ids[split_indices(len(survey_ids), test_fraction, seed)[1]]
