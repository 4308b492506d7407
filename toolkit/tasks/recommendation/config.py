"""Recipe schema of the recommendation data: interaction tables, MovieLens layouts, splits and id policy.

Example:

>>> from toolkit.tasks.recommendation.config import RecommendationDataConfig
>>> config = RecommendationDataConfig()
>>> config.source, config.layout, config.split, config.min_rating, config.unknown_ids
('movielens', 'auto', 'random', None, 'error')
>>> config = RecommendationDataConfig(source="csv", path="plays.tsv", split="kfold", fold=2,
...                                   columns={"user": "listener", "item": "track", "rating": None})
>>> config.columns.timestamp, config.folds
('timestamp', 5)
>>> try:
...     RecommendationDataConfig(split="kfold", fold=5)
... except ValueError as error:
...     print(error.errors()[0]["msg"])
Value error, fold: 5 is not below folds (5); folds are numbered 0 to 4
"""

from typing import Literal, Optional, Union

from pydantic import Field, NonNegativeInt, field_validator, model_validator

from toolkit.config.schema import DataConfig, StrictModel

Column = Union[NonNegativeInt, str]


class ColumnsConfig(StrictModel):
    """Which columns of an interaction table (data.source: csv) hold what."""

    user: Column = Field("user_id", description="user id column: header name, or 0-based position")
    item: Column = Field("item_id", description="item id column: header name, or 0-based position")
    rating: Optional[Column] = Field(
        "rating", description="rating column (a number); null: implicit feedback, every row is rating 1"
    )
    timestamp: Optional[Column] = Field(
        "timestamp", description="timestamp column (integer seconds); null: the row order is the time order"
    )
    delimiter: Optional[str] = Field(
        None, description="field separator, e.g. ',' '\\t' '|' '::' (default: tab when the first line has one, else ,)"
    )
    header: bool = Field(True, description="the first line names the columns (false: give columns as positions)")

    @field_validator("delimiter")
    @classmethod
    def _check_delimiter(cls, value):
        if value is not None and (not value or value in ('"', "\n", "\r")):
            raise ValueError(f"expected a field separator such as ',' or '\\t', got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_columns(self):
        named = [value for value in (self.user, self.item, self.rating, self.timestamp) if value is not None]
        if len(set(map(str, named))) != len(named):
            raise ValueError(f"user, item, rating and timestamp must be different columns, got {named}")
        if not self.header and any(isinstance(value, str) for value in named):
            raise ValueError("header: false needs every column given as a 0-based position, e.g. {user: 0, item: 1}")
        return self


class RecommendationDataConfig(DataConfig):
    """Recommendation: (user, item, rating, timestamp) interactions, optional user and item features."""

    source: str = Field("movielens", description="data source: movielens, csv or tfds (toolkit list sources)")
    path: Optional[str] = Field(
        None,
        description=(
            "movielens: directory of a MovieLens release (default: MovieLens-100k fetched from the recbole wheel "
            "into $TOOLKIT_HOME/data/movielens-100k); csv: the interaction table"
        ),
    )
    layout: Literal["auto", "100k", "latest", "recbole"] = Field(
        "auto",
        description=(
            "movielens file layout: 100k (u.data, u.item, u.user), latest (ratings.csv, movies.csv), "
            "recbole (atomic files *.inter, *.item, *.user) or auto (detected from the files)"
        ),
    )
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig, description="csv: columns of the interaction table")
    user_features: Optional[str] = Field(
        None, description="csv: table of user features (delimited like the interactions, id column first or "
                          "named like columns.user; numeric columns stay numbers, others are categories)"
    )
    item_features: Optional[str] = Field(
        None, description="csv: table of item features (like user_features; a 'title' column gives the titles, "
                          "a 'genres' column of |-separated names a multi-hot feature)"
    )
    tfds_name: Optional[str] = Field(
        None, description="tfds: dataset name (default movielens/100k-ratings; e.g. movielens/latest-small-ratings)"
    )
    split: Literal["random", "leave_last_out", "kfold"] = Field(
        "random",
        description=(
            "random: seeded random rows (test_fraction, then validation_fraction of the rest); leave_last_out: "
            "each user's latest interaction is test, the one before validation (when validation_fraction > 0); "
            "kfold: rows in `folds` seeded parts, part `fold` is test"
        ),
    )
    fold: NonNegativeInt = Field(0, description="kfold: which part is the test split (0 to folds - 1)")
    folds: int = Field(5, ge=2, description="kfold: number of parts (5: the classic MovieLens RMSE protocol)")
    validation_fraction: float = Field(
        0.1, ge=0.0, lt=1.0,
        description="random, kfold: share of the training rows held out for validation; leave_last_out: > 0 holds "
                    "out each user's second-latest interaction",
    )
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="random: share of rows held out for test")
    seed: Optional[int] = Field(None, description="seed of the split (default: train.seed)")
    min_rating: Optional[float] = Field(
        None, description="ratings >= this count as positives for retrieval (e.g. 4); null: every rated item"
    )
    unknown_ids: Literal["error", "popular"] = Field(
        "error", description="serving an unknown user id: error, or recommend the most popular training items"
    )

    @model_validator(mode="after")
    def _check_split(self):
        if self.split == "kfold" and self.fold >= self.folds:
            raise ValueError(f"fold: {self.fold} is not below folds ({self.folds}); folds are numbered 0 to "
                             f"{self.folds - 1}")
        if self.split == "random" and self.test_fraction <= 0:
            raise ValueError("test_fraction: a random split needs test_fraction > 0, e.g. 0.2")
        return self
