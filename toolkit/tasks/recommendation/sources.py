"""Recommendation data sources: (user, item, rating, timestamp) interactions per split, id maps and features.

- `movielens`: a MovieLens release in one of three layouts (`data.layout`,
  detected from the files under `auto`, in `data.path` or one folder below):
  `100k` (GroupLens ml-100k: tab-separated `u.data`, `|`-separated
  ISO-8859-1 `u.item` with 19 genre flags and `u.user` with age, gender,
  occupation), `latest` (ml-latest, ml-latest-small, ml-20m, ml-25m, ...:
  `ratings.csv` and `movies.csv` with quoted titles and `|`-separated
  genres) or `recbole` (RecBole atomic files: `<name>.inter`, `<name>.item`,
  `<name>.user`, tab-separated with typed headers such as `user_id:token`).
  Without `data.path` it reads MovieLens-100k as shipped in the PyPI wheel
  recbole 1.2.1 (`recbole/dataset_example/ml-100k/`), fetched once into
  `$TOOLKIT_HOME/data/movielens-100k` (`toolkit data fetch movielens`, or on
  first use when `data.download`): 100,000 ratings 1-5 of 1,682 movies by
  943 users, each with at least 20 ratings.
- `csv`: any interaction table (`data.path`), its columns named in
  `data.columns` (header names or 0-based positions, the delimiter, no
  rating column for implicit feedback, no timestamp column for "file
  order is time order"); optional `data.user_features` / `data.item_features`
  tables with a header line.
- `tfds`: a TFDS MovieLens ratings dataset (`data.tfds_name`, default
  `movielens/100k-ratings`; `movielens/latest-small-ratings`, ...) read
  into memory with its user and movie features. Needs the TFDS files on
  disk (or a connected machine); TensorFlow is imported only here.

Every source gives the same `RecommendationData`. The steps, in order:

1. Rows are read and checked: a row with too few fields (`missing_columns`),
   an empty user or item id (`empty_id`), a rating that is not a finite
   number (`bad_rating`) or a timestamp that is neither an integer nor an
   ISO date (`bad_timestamp`) is skipped and counted, or fails naming
   `file:line` under `data.on_error: fail`.
2. Repeated (user, item) pairs keep their latest row by timestamp (the
   later line on ties); the others are counted as `duplicate` (never an
   error).
3. The rows are split (`data.split`, seeded by `data.seed`, else the
   train seed): `random` rows (`data.test_fraction`, then
   `data.validation_fraction` of the rest); `leave_last_out`, per user by
   time, the latest interaction is test and, when
   `data.validation_fraction > 0`, the second latest validation, while a
   user with no more interactions than that plus one keeps them all in
   train; `kfold`, a seeded permutation of the rows in `data.folds` parts,
   part `data.fold` is test and validation is a random
   `data.validation_fraction` of the other parts (0: none).
4. `data.limit` caps the splits (train: a seeded random subset; validation
   and test: their first rows).
5. Users and items are indexed over the TRAIN split only: index 0..n-1
   in the order of their raw ids (numeric order when every id is an
   integer). A validation or test row whose user (or else item) never
   occurs in train cannot be scored by an id embedding: it is dropped and
   counted as `unknown_user` (or `unknown_item`) in that split's report.

Problems of the files (steps 1-2, and bad feature-table rows) are counted
in the train report, the split the files are read into before test and
validation are cut from it, as for the other single-table sources.
Nothing here imports TensorFlow at module level.

Example:

>>> import os, tempfile
>>> from toolkit.tasks.recommendation.sources import RECOMMENDATION_SOURCES, load_recommendation_data
>>> from toolkit.tasks.recommendation.config import RecommendationDataConfig
>>> RECOMMENDATION_SOURCES.names()
['csv', 'datasets', 'movielens', 'tfds']
>>> path = os.path.join(tempfile.mkdtemp(), "plays.csv")
>>> rows = [f"u{user},song{(user + step) % 7},{1 + (user * step) % 5},{1000 * step + user}"
...         for user in range(12) for step in range(5)]
>>> with open(path, "w", encoding="utf-8") as f:
...     _ = f.write("listener,track,stars,when\\n" + "\\n".join(rows + ["u1,song2,five,99999"]) + "\\n")
>>> config = RecommendationDataConfig(source="csv", path=path, split="leave_last_out", validation_fraction=0.1,
...                                   columns={"user": "listener", "item": "track", "rating": "stars",
...                                            "timestamp": "when"})
>>> data = load_recommendation_data(config, seed=0)
>>> {name: len(rows) for name, rows in data.splits.items()}
{'train': 36, 'validation': 12, 'test': 12}
>>> data.num_users, data.num_items, data.user_ids[:3].tolist()
(12, 7, ['u0', 'u1', 'u10'])
>>> data.report["train"]["skipped_reasons"]
{'bad_rating': 1}
>>> test = data.splits["test"]
>>> user, item = str(data.user_ids[test.users[0]]), str(data.item_ids[test.items[0]])
>>> user, item, float(test.ratings[0]), int(test.timestamps[0])
('u0', 'song4', 1.0, 4000)
"""

import csv
import dataclasses
import datetime
import math
import os
import re

import numpy as np

from toolkit.data import user_data
from toolkit.data.skips import describe
from toolkit.data.splits import MAX_SKIPPED_EXAMPLES, SPLITS, count_skip, empty_report, utf8_lines
from toolkit.errors import DataError
from toolkit.registry import Registry, did_you_mean

describe("unknown_user", "ratings of users not in the training split, which a model cannot score", expected=True)
describe("unknown_item", "ratings of items not in the training split, which a model cannot score", expected=True)
describe("duplicate", "earlier ratings of a user and item rated again, the latest kept", expected=True)
describe("duplicate_id", "repeated ids in a users/items file, the last row kept")
describe("missing_columns", "rows with too few columns")
describe("empty_id", "rows without a user or item id")
describe("bad_rating", "rows whose rating is not a number")
describe("bad_timestamp", "rows whose timestamp is not a number")

RECOMMENDATION_SOURCES = Registry("recommendation data source", DataError)
RECOMMENDATION_SOURCES.register(user_data.SOURCE, user_data.refuse_in_recipe)  # toolkit.train(recipe, data=...)
DEFAULT_TFDS_NAME = "movielens/100k-ratings"
MOVIELENS_CACHE = "movielens-100k"
LAYOUTS = ("100k", "latest", "recbole")
# The 19 genre flags of ml-100k u.item, in column order (u.genre, when present, is read instead).
GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western")
NO_GENRES = "(no genres listed)"  # ml-latest movies.csv
_TYPED_NAME = re.compile(r":(token|token_seq|float|float_seq)$")  # RecBole header suffixes
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")


# ------------------------------------------------------------------------ results


@dataclasses.dataclass
class Interactions:
    """One split's interactions, row-aligned NumPy arrays.

    Args:
        users: np.ndarray. int32 user indices (into `RecommendationData.user_ids`).
        items: np.ndarray. int32 item indices (into `RecommendationData.item_ids`).
        ratings: np.ndarray. float32 ratings (1.0 for implicit feedback).
        timestamps: np.ndarray. int64 seconds (0 when the source has no time;
            then the row order is the time order).
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    def __len__(self):
        return len(self.users)

    def take(self, rows):
        """The interactions at `rows` (indices or a boolean mask)."""
        return Interactions(self.users[rows], self.items[rows], self.ratings[rows], self.timestamps[rows])


@dataclasses.dataclass
class Features:
    """Per-user or per-item features, aligned to the index (first axis = user or item index).

    Args:
        arrays: dict. Feature name -> np.ndarray: "numeric" float32 (n,)
            (missing values filled with the median), "categorical" int32
            (n,) into its vocabulary (0 = missing or unknown), "multi_hot"
            float32 (n, vocabulary size).
        kinds: dict. Feature name -> "numeric", "categorical" or "multi_hot".
        vocabularies: dict. Feature name -> list of str, for categorical
            (entry 0 is "") and multi-hot features.
    """

    arrays: dict = dataclasses.field(default_factory=dict)
    kinds: dict = dataclasses.field(default_factory=dict)
    vocabularies: dict = dataclasses.field(default_factory=dict)

    def names(self):
        """Feature names, in table order."""
        return list(self.arrays)


@dataclasses.dataclass
class RecommendationData:
    """What a recommendation source returns.

    Args:
        splits: dict. "train", "validation", "test" -> `Interactions`
            (validation may be empty). Validation and test hold only users
            and items of train.
        user_ids: np.ndarray. str, user index -> raw id (train users).
        item_ids: np.ndarray. str, item index -> raw id (train items).
        item_titles: np.ndarray. str, item index -> title (the raw id when
            the source has none).
        user_features: Features. E.g. MovieLens-100k: age (numeric),
            gender, occupation (categorical).
        item_features: Features. E.g. MovieLens: genres (multi-hot), year
            (numeric).
        report: dict. Per split: {"rows_read", "examples", "skipped",
            "skipped_reasons": {reason: count}, "skipped_examples": up to 10
            "file:line: reason" strings}. Train: rows of the files and their
            problems; validation and test: rows the split drew and the
            unknown_user / unknown_item rows dropped.
        provenance: str. One line: where the data came from (model card).
        min_rating: optional float. Ratings >= this are positives.
        info: dict. Source details: layout, files, split, seed, "rows"
            (read, usable, unique), "table" (interactions, users, items of
            the whole table), "users" and "items" (indexed, train),
            rating_scale ([min, max] of train), ...
    """

    splits: dict
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_titles: np.ndarray
    user_features: Features
    item_features: Features
    report: dict
    provenance: str
    min_rating: float = None
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.user_index = {raw: index for index, raw in enumerate(self.user_ids.tolist())}
        self.item_index = {raw: index for index, raw in enumerate(self.item_ids.tolist())}

    @property
    def num_users(self):
        return len(self.user_ids)

    @property
    def num_items(self):
        return len(self.item_ids)

    def user_indices(self, raw_ids):
        """int32 indices of raw user ids (str or int), -1 for ids not in train."""
        return np.asarray([self.user_index.get(str(raw), -1) for raw in raw_ids], np.int32)

    def item_indices(self, raw_ids):
        """int32 indices of raw item ids (str or int), -1 for ids not in train."""
        return np.asarray([self.item_index.get(str(raw), -1) for raw in raw_ids], np.int32)

    def positives(self, split):
        """The split's interactions that count as positives: rating >= `min_rating`, or all of them."""
        interactions = self.splits[split]
        if self.min_rating is None:
            return interactions
        return interactions.take(interactions.ratings >= self.min_rating)

    def items_by_user(self, split, positives_only=False):
        """List over user indices of int32 item-index arrays of the split (sorted by item index).

        Args:
            split: str. "train", "validation" or "test".
            positives_only: bool. Only ratings >= `min_rating` (see `positives`).
        """
        interactions = self.positives(split) if positives_only else self.splits[split]
        order = np.lexsort((interactions.items, interactions.users))
        users, items = interactions.users[order], interactions.items[order]
        bounds = np.searchsorted(users, np.arange(self.num_users + 1))
        return [items[bounds[user]:bounds[user + 1]] for user in range(self.num_users)]

    def item_popularity(self):
        """int64 count per item index of its positive training interactions (most-popular baseline, cold start)."""
        return np.bincount(self.positives("train").items, minlength=self.num_items).astype(np.int64)


# ----------------------------------------------------------------------- reading


@dataclasses.dataclass
class RawInteractions:
    """Interaction rows as read, before indexing: raw ids and where each row came from."""

    file: str
    users: np.ndarray  # str
    items: np.ndarray  # str
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64
    lines: np.ndarray  # int64 line (or example) numbers in `file`

    def where(self, row):
        return f"{self.file}:{self.lines[row]}"


@dataclasses.dataclass
class RawFeatures:
    """A feature table as read: raw id -> {feature: value}, plus titles.

    Values: float (numeric), str (categorical) or list of str (multi-hot).
    """

    kinds: dict = dataclasses.field(default_factory=dict)
    rows: dict = dataclasses.field(default_factory=dict)
    vocabularies: dict = dataclasses.field(default_factory=dict)  # fixed vocabularies (e.g. the 19 genres)
    titles: dict = dataclasses.field(default_factory=dict)
    file: str = ""


def legacy_lines(path):
    """Yields ("path:line", text) of the non-blank lines of a GroupLens 100k file.

    Each line is UTF-8 where it decodes, else ISO-8859-1 (the encoding of
    ml-100k's u.item: "Misérables, Les" is `Mis\\xe9rables`), so no line is lost.
    """
    return utf8_lines(path, None, "skip", fallback="latin-1")


def split_fields(line, delimiter):
    """The fields of one delimited line; quoted fields ("Toy Story, The") are parsed like CSV."""
    if '"' in line and len(delimiter) == 1:
        return next(csv.reader([line], delimiter=delimiter))
    return line.split(delimiter)


def header_names(line, delimiter):
    """Column names of a header line, RecBole type suffixes (`user_id:token`) dropped."""
    return [_TYPED_NAME.sub("", name.strip()) for name in split_fields(line, delimiter)]


def parse_timestamp(text):
    """Integer seconds of `text`: an integer, an integral float ("881250949.0") or an ISO date."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
        if math.isfinite(value) and value == int(value):
            return int(value)
    except ValueError:
        pass
    moment = datetime.datetime.fromisoformat(text)  # ValueError when not a date
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())


def _timestamp(text):
    seconds = parse_timestamp(text)
    if abs(seconds) >= 2 ** 62:
        raise ValueError("out of range")
    return seconds


def _position(names, column, field, path):
    """0-based position of `column` (a header name or a position) in a table with `names` (None: no header).

    `field` is the recipe field that names the column (data.columns.user), or None for a fixed file layout.
    """
    if isinstance(column, int):
        if names is None or column < len(names):
            return column
        problem, fix = f"position {column} but {path} has {len(names)} columns", "a smaller position or a name"
    elif column in names:
        return names.index(column)
    else:
        problem = f"no column {column!r} in {path}{did_you_mean(column, names)} (columns: {', '.join(names)})"
        fix = "one of them"
    if field is None:
        raise DataError(f"{problem}; not the expected MovieLens file: check data.path and data.layout")
    raise DataError(f"{field}: {problem}; set {field} to {fix}")


def _open_lines(path, report, on_error, legacy):
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file; check data.path")
    return legacy_lines(path) if legacy else utf8_lines(path, report, on_error)


def read_interactions(path, report, on_error, user, item, rating="rating", timestamp="timestamp",
                      delimiter=None, header=True, field="data.columns", legacy=False):
    """Reads an interaction table; returns `RawInteractions` (bad rows counted in `report`).

    Args:
        path: str. The table.
        report: dict. The train report (`empty_report()`): bad rows are counted here.
        on_error: str. "skip" or "fail".
        user, item: str or int. Column names (with a header) or 0-based positions.
        rating: optional str or int. None: every row is rating 1.0 (implicit feedback).
        timestamp: optional str or int. None: every timestamp is 0 (file order is time order).
        delimiter: optional str. None: tab when the first line holds one, else ",".
        header: bool. Whether the first line names the columns.
        field: optional str. The recipe field naming the columns, for errors
            (None: a fixed MovieLens layout).
        legacy: bool. Decode lines that are not UTF-8 as ISO-8859-1 instead of skipping them.
    """
    undecodable = report["skipped_reasons"].get("not UTF-8", 0)
    lines = _open_lines(path, report, on_error, legacy)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: empty file; expected interaction rows (user, item, rating, timestamp)")
    delimiter = delimiter or ("\t" if "\t" in first[1] else ",")
    names = header_names(first[1], delimiter) if header else None
    columns = {"user": user, "item": item, "rating": rating, "timestamp": timestamp}
    positions = {name: _position(names, column, field and f"{field}.{name}", path)
                 for name, column in columns.items() if column is not None}
    needed = max(positions.values()) + 1
    if not header:
        lines = _chain(first, lines)  # the first line is a row
    users, items, ratings, timestamps, line_numbers = [], [], [], [], []
    read = 0
    for where, text in lines:
        read += 1
        fields = split_fields(text, delimiter)
        if len(fields) < needed:
            count_skip(report, where, "missing_columns", on_error,
                       detail=f"{len(fields)} fields, expected at least {needed} (delimiter {delimiter!r})",
                       fix="fix the line" + (" or data.columns.delimiter" if field else ""))
            continue
        user_id, item_id = fields[positions["user"]].strip(), fields[positions["item"]].strip()
        if not user_id or not item_id:
            count_skip(report, where, "empty_id", on_error, detail="no user id" if not user_id else "no item id")
            continue
        value = 1.0
        if "rating" in positions:
            try:
                value = float(fields[positions["rating"]])
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or abs(value) > 1e30:
                count_skip(report, where, "bad_rating", on_error,
                           detail=f"{fields[positions['rating']].strip()!r} is not a number")
                continue
        seconds = 0
        if "timestamp" in positions:
            try:
                seconds = _timestamp(fields[positions["timestamp"]])
            except (ValueError, OverflowError):
                count_skip(report, where, "bad_timestamp", on_error,
                           detail=f"{fields[positions['timestamp']].strip()!r} is not integer seconds or an ISO date")
                continue
        users.append(user_id)
        items.append(item_id)
        ratings.append(value)
        timestamps.append(seconds)
        line_numbers.append(int(where.rsplit(":", 1)[1]))
    read += report["skipped_reasons"].get("not UTF-8", 0) - undecodable  # rows utf8_lines skipped
    report["rows_read"] = report.get("rows_read", 0) + read
    if not users:
        reasons = ", ".join(f"{count} {reason}" for reason, count in report["skipped_reasons"].items()) or "none"
        raise DataError(f"{path}: no usable interaction row ({report['skipped']} skipped: {reasons}); check the file"
                        f"{' and ' + field if field else ''}")
    return RawInteractions(path, np.asarray(users, dtype=str), np.asarray(items, dtype=str),
                           np.asarray(ratings, np.float32), np.asarray(timestamps, np.int64),
                           np.asarray(line_numbers, np.int64))


def _chain(first, rest):
    yield first
    yield from rest


def _number(text):
    """float of `text`, or None when empty or not a finite number."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_feature_table(path, id_column, report, on_error, delimiter=None, title_columns=("title",),
                       genre_columns=("genres", "genre"), genre_separator="|"):
    """Reads a feature table with a header line; returns `RawFeatures`.

    The id column is `id_column` when the header has it, else the first
    column. A column named like `title_columns` gives the titles, one named
    like `genre_columns` a multi-hot feature (names split on
    `genre_separator`); every other column is numeric when all its
    non-empty values are numbers, else categorical. A repeated id keeps its
    last row; the earlier ones are counted as `duplicate_id` in `report`.

    Args:
        path: str. The table.
        id_column: str or int. The id column's name (or position).
        report: dict. Bad rows are counted here.
        on_error: str. "skip" or "fail".
        delimiter: optional str. None: tab when the header holds one, else ",".
    """
    lines = _open_lines(path, report, on_error, legacy=False)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: empty feature table; expected a header line, then one row per id")
    delimiter = delimiter or ("\t" if "\t" in first[1] else ",")
    names = header_names(first[1], delimiter)
    if isinstance(id_column, int):
        id_position = id_column if id_column < len(names) else 0
    else:
        id_position = names.index(id_column) if id_column in names else 0
    columns = {}
    for position, name in enumerate(names):
        if position != id_position and name:
            columns[position] = name
    values = {name: {} for name in columns.values()}
    seen = {}
    for where, text in lines:
        fields = split_fields(text, delimiter)
        if len(fields) < len(names):
            count_skip(report, where, "missing_columns", on_error,
                       detail=f"{len(fields)} fields, the header has {len(names)}")
            continue
        raw_id = fields[id_position].strip()
        if not raw_id:
            count_skip(report, where, "empty_id", on_error, detail="no id")
            continue
        if raw_id in seen:  # the last row wins, as for interactions; the earlier one is counted (never an error)
            _count_rows(report, "duplicate_id", 1, [
                f"{seen[raw_id]}: duplicate_id: id {raw_id} again on line {where.rsplit(':', 1)[1]} "
                "(the last row is kept)"])
        seen[raw_id] = where
        for position, name in columns.items():
            values[name][raw_id] = fields[position].strip()
    table = RawFeatures(file=path)
    for name, by_id in values.items():
        if name in title_columns:
            table.titles.update(by_id)
            continue
        if name in genre_columns:
            kind = "multi_hot"
            parsed = {raw_id: [genre.strip() for genre in value.split(genre_separator) if genre.strip()]
                      for raw_id, value in by_id.items()}
        elif all(_number(value) is not None for value in by_id.values() if value):
            kind, parsed = "numeric", {raw_id: _number(value) for raw_id, value in by_id.items()}
        else:
            kind, parsed = "categorical", by_id
        table.kinds[name] = kind
        for raw_id, value in parsed.items():
            table.rows.setdefault(raw_id, {})[name] = value
    return table


def align_features(table, ids):
    """`Features` of the entities `ids` (index order) from a `RawFeatures` table.

    Missing numeric values take the median of the known ones; a missing
    category is 0 (""); a missing genre list is all zeros. Categorical
    vocabularies are the sorted values of the whole table after "".
    """
    features = Features()
    for name, kind in table.kinds.items():
        values = [table.rows.get(raw, {}).get(name) for raw in ids]
        if kind == "numeric":
            array = np.asarray([math.nan if value is None else value for value in values], np.float32)
            known = array[~np.isnan(array)]
            array[np.isnan(array)] = np.median(known) if known.size else 0.0
        elif kind == "categorical":
            vocabulary = [""] + sorted({row[name] for row in table.rows.values() if row.get(name)})
            lookup = {value: index for index, value in enumerate(vocabulary)}
            array = np.asarray([lookup.get(value or "", 0) for value in values], np.int32)
            features.vocabularies[name] = vocabulary
        elif kind == "multi_hot":
            vocabulary = list(table.vocabularies.get(name) or sorted(
                {genre for row in table.rows.values() for genre in row.get(name) or ()}))
            lookup = {value: index for index, value in enumerate(vocabulary)}
            array = np.zeros((len(ids), len(vocabulary)), np.float32)
            for row, genres in enumerate(values):
                for genre in genres or ():
                    if genre in lookup:
                        array[row, lookup[genre]] = 1.0
            features.vocabularies[name] = vocabulary
        else:
            raise ValueError(f"unknown feature kind {kind!r}")
        features.arrays[name], features.kinds[name] = array, kind
    return features


# ------------------------------------------------------------------------ splits


def cut_count(total, fraction):
    """How many of `total` rows a `fraction` holds out: at least 1 and at most total - 1 when fraction > 0."""
    count = int(round(total * fraction))
    if fraction > 0 and total > 1:
        count = max(1, min(count, total - 1))
    return count


def split_rows(users, timestamps, config, seed):
    """Row indices of each split; returns ({split: sorted int64 array}, info).

    Args:
        users: np.ndarray. int user codes per row.
        timestamps: np.ndarray. int64 per row (ties: the later row is later).
        config: RecommendationDataConfig. split, fractions, fold, folds.
        seed: int.
    """
    total = len(users)
    rows = np.arange(total)
    if config.split == "leave_last_out":
        held = 2 if config.validation_fraction > 0 else 1
        order = np.lexsort((rows, timestamps, users))  # by user, then time, then row
        sorted_users = users[order]
        starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
        counts = np.diff(np.r_[starts, total])
        from_end = np.repeat(starts + counts, counts) - 1 - np.arange(total)  # 0: the user's latest row
        eligible = np.repeat(counts > held, counts)
        test = order[eligible & (from_end == 0)]
        validation = order[eligible & (from_end == 1)] if held == 2 else rows[:0]
        train = order[~eligible | (from_end >= held)]
        info = {"split": f"leave_last_out: each user's latest interaction is test"
                         f"{', the one before validation' if held == 2 else ''}",
                "users_all_in_train": int((counts <= held).sum())}
    else:
        permutation = np.random.RandomState(seed).permutation(total)
        if config.split == "kfold":
            parts = np.array_split(permutation, config.folds)
            test = parts[config.fold]
            rest = np.concatenate([part for index, part in enumerate(parts) if index != config.fold])
            rest = rest[np.random.RandomState(seed + 1).permutation(len(rest))]
            info = {"split": f"kfold: fold {config.fold} of {config.folds} (seeded row permutation) is test"}
        else:
            count = cut_count(total, config.test_fraction)
            test, rest = permutation[:count], permutation[count:]
            info = {"split": f"random: {config.test_fraction:g} of the rows are test"}
        count = cut_count(len(rest), config.validation_fraction)
        validation, train = rest[:count], rest[count:]
        if count:
            info["split"] += f", {config.validation_fraction:g} of the rest validation"
    splits = {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}
    return splits, info


def drop_duplicates(raw, user_codes, item_codes, report):
    """Rows to keep: the latest row (by timestamp, then line) of each (user, item) pair; counts the others."""
    total = len(raw.users)
    rows = np.arange(total)
    keys = user_codes.astype(np.int64) * (int(item_codes.max()) + 1) + item_codes
    order = np.lexsort((rows, raw.timestamps, keys))
    sorted_keys = keys[order]
    last = np.ones(total, bool)
    last[:-1] = sorted_keys[:-1] != sorted_keys[1:]
    dropped = np.sort(order[~last])
    if dropped.size:
        _count_rows(report, "duplicate", dropped.size, [
            f"{raw.where(row)}: duplicate: user {raw.users[row]} item {raw.items[row]} again later "
            "(the latest row is kept)" for row in dropped[:MAX_SKIPPED_EXAMPLES]])
    return np.sort(order[last])


def _count_rows(report, reason, count, examples):
    """Counts `count` rows skipped for `reason` (never an error), with example strings."""
    report["skipped"] += int(count)
    report["skipped_reasons"][reason] = report["skipped_reasons"].get(reason, 0) + int(count)
    room = MAX_SKIPPED_EXAMPLES - len(report["skipped_examples"])
    report["skipped_examples"].extend(examples[:max(room, 0)])


def _sorted_ids(raw_ids):
    """Unique raw ids in index order: numeric when every id is an integer, else by string."""
    unique = np.unique(raw_ids)
    try:
        numbers = np.asarray([int(value) for value in unique.tolist()])
    except (ValueError, OverflowError):
        return unique
    return unique[np.argsort(numbers, kind="stable")]


# ------------------------------------------------------------------------- build


def build_recommendation_data(raw, config, seed, provenance, report, user_table=None, item_table=None, info=None):
    """Deduplicates, splits, indexes and filters raw interactions; returns `RecommendationData`.

    Args:
        raw: RawInteractions.
        config: RecommendationDataConfig.
        seed: int. The split seed unless `config.seed` is set.
        provenance: str.
        report: dict. The train report, with the reading problems counted.
        user_table, item_table: optional RawFeatures (replaced by
            `data.user_features` / `data.item_features` when set).
        info: optional dict of source details.
    """
    seed = config.seed if config.seed is not None else seed
    info = dict(info or {}, seed=seed)
    if config.user_features:
        user_table = read_feature_table(config.user_features, config.columns.user, report, config.on_error,
                                        config.columns.delimiter)
    if config.item_features:
        item_table = read_feature_table(config.item_features, config.columns.item, report, config.on_error,
                                        config.columns.delimiter)
    user_vocabulary, user_codes = np.unique(raw.users, return_inverse=True)
    item_vocabulary, item_codes = np.unique(raw.items, return_inverse=True)
    user_codes, item_codes = user_codes.reshape(-1), item_codes.reshape(-1)
    kept = drop_duplicates(raw, user_codes, item_codes, report)
    rows, split_info = split_rows(user_codes[kept], raw.timestamps[kept], config, seed)
    info.update(split_info)
    rows = {name: kept[indices] for name, indices in rows.items()}
    info["rows"] = {"read": report.get("rows_read", len(raw.users)), "usable": len(raw.users), "unique": len(kept)}
    info["table"] = {"interactions": len(kept), "users": len(user_vocabulary), "items": len(item_vocabulary)}
    limit = config.limit.train
    if limit is not None and len(rows["train"]) > limit:
        rows["train"] = np.sort(rows["train"][np.random.RandomState(seed + 2).permutation(len(rows["train"]))[:limit]])
    if not len(rows["train"]):
        raise DataError(f"data: source {config.source!r} gave no training interactions ({provenance}); "
                        "check data.split and the fractions")
    # Index over the training users and items.
    user_ids = _sorted_ids(user_vocabulary[np.unique(user_codes[rows["train"]])])
    item_ids = _sorted_ids(item_vocabulary[np.unique(item_codes[rows["train"]])])
    user_map = np.full(len(user_vocabulary), -1, np.int32)
    user_map[np.searchsorted(user_vocabulary, user_ids)] = np.arange(len(user_ids), dtype=np.int32)
    item_map = np.full(len(item_vocabulary), -1, np.int32)
    item_map[np.searchsorted(item_vocabulary, item_ids)] = np.arange(len(item_ids), dtype=np.int32)
    reports = {"train": report}
    report["examples"] = len(rows["train"])
    splits = {}
    for name in SPLITS:
        users, items = user_map[user_codes[rows[name]]], item_map[item_codes[rows[name]]]
        if name != "train":
            split_report = reports[name] = empty_report()
            split_report["rows_read"] = len(rows[name])
            unknown_user, known = users < 0, users >= 0
            unknown_item = known & (items < 0)
            for reason, mask, kind, raw_ids in (("unknown_user", unknown_user, "user", raw.users),
                                                ("unknown_item", unknown_item, "item", raw.items)):
                if mask.any():
                    examples = [f"{raw.where(row)}: {reason}: {kind} {raw_ids[row]} is not in the training split"
                                for row in rows[name][mask][:MAX_SKIPPED_EXAMPLES]]
                    _count_rows(split_report, reason, mask.sum(), examples)
            keep = known & (items >= 0)
            rows[name], users, items = rows[name][keep], users[keep], items[keep]
            limit = getattr(config.limit, name)
            if limit is not None and len(rows[name]) > limit:
                rows[name], users, items = rows[name][:limit], users[:limit], items[:limit]
            split_report["examples"] = len(rows[name])
        splits[name] = Interactions(users.astype(np.int32), items.astype(np.int32), raw.ratings[rows[name]],
                                    raw.timestamps[rows[name]])
    user_ids, item_ids = user_ids.astype(str), item_ids.astype(str)
    user_features = align_features(user_table, user_ids.tolist()) if user_table else Features()
    item_features = align_features(item_table, item_ids.tolist()) if item_table else Features()
    titles = (item_table.titles if item_table else {})
    item_titles = np.asarray([titles.get(raw_id) or raw_id for raw_id in item_ids.tolist()], dtype=str)
    train_ratings = splits["train"].ratings
    info.update({
        "users": len(user_ids), "items": len(item_ids),
        "density": round(len(train_ratings) / (len(user_ids) * len(item_ids)), 6),
        "rating_scale": [float(train_ratings.min()), float(train_ratings.max())],
        "items_with_titles": int(sum(1 for raw_id in item_ids.tolist() if titles.get(raw_id))),
        "min_rating": config.min_rating,
    })
    return RecommendationData(splits, user_ids, item_ids, item_titles, user_features, item_features,
                              reports, provenance, config.min_rating, info)


def load_recommendation_data(config, seed):
    """Reads `config.source` (a RECOMMENDATION_SOURCES name); returns `RecommendationData`.

    Args:
        config: RecommendationDataConfig.
        seed: int. The split seed when `config.seed` is not set (the recipe's train.seed).
    """
    return RECOMMENDATION_SOURCES.get(config.source)(config, seed)


# --------------------------------------------------------------------------- csv


@RECOMMENDATION_SOURCES.register("csv")
def load_csv(config, seed):
    """An interaction table (`data.path`) with the columns of `data.columns` (user, item, rating, timestamp,
    delimiter, header), and optional `data.user_features` / `data.item_features` tables."""
    path = config.path
    if not path:
        raise DataError("data.path: required for data.source: csv (a table of user, item, rating, timestamp rows)")
    if not os.path.isfile(path):
        raise DataError(f"data.path {path} does not exist or is not a file; set data.path to the interaction table")
    columns = config.columns
    report = empty_report()
    raw = read_interactions(path, report, config.on_error, columns.user, columns.item, columns.rating,
                            columns.timestamp, columns.delimiter, columns.header)
    info = {"files": {"interactions": path}, "implicit": columns.rating is None}
    provenance = f"interaction table {os.path.abspath(path)}"
    return build_recommendation_data(raw, config, seed, provenance, report, info=info)


# --------------------------------------------------------------------- movielens


def find_layout(path, layout):
    """(directory, layout) of the MovieLens files in `path` or one folder below it."""
    markers = {"100k": lambda folder: os.path.isfile(os.path.join(folder, "u.data")),
               "latest": lambda folder: os.path.isfile(os.path.join(folder, "ratings.csv")),
               "recbole": lambda folder: bool(_inter_files(folder))}
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    candidates = [folder] + sorted(os.path.join(folder, name) for name in os.listdir(folder)
                                   if os.path.isdir(os.path.join(folder, name)))
    wanted = LAYOUTS if layout == "auto" else (layout,)
    for candidate in candidates:
        for name in wanted:
            if markers[name](candidate):
                return candidate, name
    expected = {"100k": "u.data", "latest": "ratings.csv", "recbole": "a *.inter file"}
    raise DataError(f"data.path {path}: no MovieLens files here nor one folder below (expected "
                    f"{' or '.join(expected[name] for name in wanted)}); set data.path to the folder of a MovieLens "
                    "release, or leave it unset for MovieLens-100k (toolkit data fetch movielens)")


def _inter_files(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".inter"))


def _read_100k(folder, config, report):
    raw = read_interactions(os.path.join(folder, "u.data"), report, config.on_error, 0, 1, 2, 3, "\t",
                            header=False, field=None)
    genres = list(GENRES_100K)
    genre_file = os.path.join(folder, "u.genre")
    if os.path.isfile(genre_file):
        named = {}
        for _, text in legacy_lines(genre_file):
            name, _, position = text.rpartition("|")
            if name and position.strip().isdigit():
                named[int(position)] = name
        if sorted(named) == list(range(len(named))) and named:
            genres = [named[index] for index in range(len(named))]
    items = RawFeatures(kinds={"genres": "multi_hot", "year": "numeric"}, vocabularies={"genres": genres})
    item_file = os.path.join(folder, "u.item")
    if os.path.isfile(item_file):
        items.file = item_file
        for where, text in legacy_lines(item_file):
            fields = text.split("|")
            if len(fields) < 5 + len(genres) or not fields[0].strip():
                count_skip(report, where, "missing_columns", config.on_error,
                           detail=f"{len(fields)} fields, expected {5 + len(genres)} (id|title|date|video date|url|"
                                  f"{len(genres)} genre flags)")
                continue
            item_id, title, date = fields[0].strip(), fields[1].strip(), fields[2].strip()
            flags = fields[5:5 + len(genres)]
            items.titles[item_id] = title
            year = _number(date[-4:]) if len(date) >= 4 else None
            match = _TITLE_YEAR.search(title)
            items.rows[item_id] = {"genres": [genre for genre, flag in zip(genres, flags) if flag.strip() == "1"],
                                   "year": year if year is not None else (float(match.group(1)) if match else None)}
    users = _read_user_table(os.path.join(folder, "u.user"), "|", report, config.on_error, legacy=True)
    return raw, users, items, {"interactions": "u.data", "items": "u.item", "users": "u.user"}


def _read_user_table(path, delimiter, report, on_error, legacy=False, header=False):
    """MovieLens users (id, age, gender, occupation, zip): age numeric, gender and occupation categorical."""
    users = RawFeatures(kinds={"age": "numeric", "gender": "categorical", "occupation": "categorical"}, file=path)
    if not os.path.isfile(path):
        return None
    lines = legacy_lines(path) if legacy else utf8_lines(path, report, on_error)
    positions = (0, 1, 2, 3)
    if header:
        names = header_names(next(lines, (None, ""))[1], delimiter)
        wanted = ("user_id", "age", "gender", "occupation")
        if all(name in names for name in wanted):
            positions = tuple(names.index(name) for name in wanted)
    for where, text in lines:
        fields = split_fields(text, delimiter)
        if len(fields) <= max(positions) or not fields[positions[0]].strip():
            count_skip(report, where, "missing_columns", on_error,
                       detail=f"{len(fields)} fields, expected id, age, gender, occupation")
            continue
        user_id, age, gender, occupation = (fields[position].strip() for position in positions)
        users.rows[user_id] = {"age": _number(age), "gender": gender, "occupation": occupation}
    return users


def _read_latest(folder, config, report):
    raw = read_interactions(os.path.join(folder, "ratings.csv"), report, config.on_error, "userId", "movieId",
                            "rating", "timestamp", ",", field=None)
    items = None
    movie_file = os.path.join(folder, "movies.csv")
    if os.path.isfile(movie_file):
        items = RawFeatures(kinds={"genres": "multi_hot", "year": "numeric"}, file=movie_file)
        lines = utf8_lines(movie_file, report, config.on_error)
        names = header_names(next(lines, (None, "movieId,title,genres"))[1], ",")
        positions = [names.index(name) if name in names else index
                     for index, name in enumerate(("movieId", "title", "genres"))]
        for where, text in lines:
            fields = split_fields(text, ",")
            if len(fields) <= max(positions) or not fields[positions[0]].strip():
                count_skip(report, where, "missing_columns", config.on_error,
                           detail=f"{len(fields)} fields, expected movieId,title,genres (quote titles with commas)")
                continue
            item_id, title, genres = (fields[position].strip() for position in positions)
            match = _TITLE_YEAR.search(title)
            items.titles[item_id] = title
            items.rows[item_id] = {"genres": [genre for genre in genres.split("|") if genre and genre != NO_GENRES],
                                   "year": float(match.group(1)) if match else None}
    return raw, None, items, {"interactions": "ratings.csv", "items": "movies.csv"}


def _read_recbole(folder, config, report):
    inter = _inter_files(folder)[0]
    stem = inter[:-len(".inter")]
    raw = read_interactions(os.path.join(folder, inter), report, config.on_error, "user_id", "item_id", "rating",
                            "timestamp", "\t", field=None)
    items = None
    item_file = os.path.join(folder, stem + ".item")
    if os.path.isfile(item_file):
        items = RawFeatures(kinds={"genres": "multi_hot", "year": "numeric"}, file=item_file)
        lines = utf8_lines(item_file, report, config.on_error)
        names = header_names(next(lines, (None, ""))[1], "\t")
        if "item_id" not in names:
            raise DataError(f"{item_file}: no item_id column in the header (columns: {', '.join(names)}); "
                            "expected RecBole atomic headers such as item_id:token")
        genre_name = next((name for name in ("class", "genre", "genres") if name in names), None)
        title_name = next((name for name in ("movie_title", "title") if name in names), None)
        for where, text in lines:
            fields = text.split("\t")
            if len(fields) < len(names):
                count_skip(report, where, "missing_columns", config.on_error,
                           detail=f"{len(fields)} fields, the header has {len(names)}")
                continue
            row = dict(zip(names, (field.strip() for field in fields)))
            item_id, year = row["item_id"], _number(row.get("release_year", ""))
            if title_name and row[title_name]:
                title = row[title_name]  # RecBole drops the year of the GroupLens titles: put it back
                items.titles[item_id] = title if year is None or _TITLE_YEAR.search(title) else f"{title} ({year:.0f})"
            items.rows[item_id] = {"genres": row[genre_name].split() if genre_name else [], "year": year}
        if genre_name is None:
            del items.kinds["genres"]
    users = _read_user_table(os.path.join(folder, stem + ".user"), "\t", report, config.on_error, header=True)
    return raw, users, items, {"interactions": inter, "items": stem + ".item", "users": stem + ".user"}


MOVIELENS_READERS = {"100k": _read_100k, "latest": _read_latest, "recbole": _read_recbole}


@RECOMMENDATION_SOURCES.register("movielens")
def load_movielens(config, seed):
    """MovieLens ratings, movies (titles, genres, year) and users (age, gender, occupation) in the 100k, latest
    or RecBole layout (`data.layout`) from `data.path`; default: MovieLens-100k from the recbole wheel,
    fetched into $TOOLKIT_HOME/data/movielens-100k on first use."""
    from toolkit.data.fetch import MOVIELENS_100K, data_cache, fetch_wheel_members

    path = config.path
    if path is None:
        path = data_cache(MOVIELENS_CACHE)
        fetch_wheel_members(MOVIELENS_100K, path, download=config.download)
    elif not os.path.exists(path):
        raise DataError(f"data.path {path} does not exist; set data.path to the folder of a MovieLens release, or "
                        "leave it unset for MovieLens-100k (toolkit data fetch movielens)")
    folder, layout = find_layout(path, config.layout)
    report = empty_report()
    raw, users, items, files = MOVIELENS_READERS[layout](folder, config, report)
    files = {kind: os.path.join(folder, name) for kind, name in files.items()
             if os.path.isfile(os.path.join(folder, name))}
    source_file = os.path.join(folder, "SOURCE.txt")
    if os.path.isfile(source_file):  # written by toolkit data fetch
        with open(source_file, encoding="utf-8") as f:
            origin = " ".join(f.read().split())
        provenance = f"{origin}, read from {folder}"
    else:
        provenance = f"MovieLens ({layout} layout: {', '.join(os.path.basename(file) for file in files.values())}) " \
                     f"from {os.path.abspath(folder)} (GroupLens, https://grouplens.org/datasets/movielens/)"
    info = {"layout": layout, "files": files}
    return build_recommendation_data(raw, config, seed, provenance, report, users, items, info)


# -------------------------------------------------------------------------- TFDS


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _genre_names(info):
    try:
        return list(info.features["movie_genres"].feature.names)
    except (KeyError, AttributeError, TypeError):
        return None


@RECOMMENDATION_SOURCES.register("tfds")
def load_tfds_ratings(config, seed):
    """A TFDS MovieLens ratings dataset (`data.tfds_name`, default movielens/100k-ratings) with its user and
    movie features, from `data.tfds_data_dir` or downloaded when `data.download`."""
    from toolkit.data.tfds import prepare_tfds

    name = config.tfds_name or DEFAULT_TFDS_NAME
    try:
        builder, info = prepare_tfds(name, config)
    except DataError as error:
        raise DataError(str(error).replace(
            "data.source: folder", "data.source: movielens (MovieLens-100k offline: toolkit data fetch movielens)"))
    genre_names = _genre_names(info)
    report = empty_report()
    users, items, ratings, timestamps, lines = [], [], [], [], []
    user_table = RawFeatures(kinds={"age": "numeric", "gender": "categorical", "occupation": "categorical"})
    item_table = RawFeatures(kinds={"genres": "multi_hot", "year": "numeric"},
                             vocabularies={"genres": genre_names or []})
    where_name = f"{info.full_name}/train"
    for index, example in enumerate(builder.as_dataset(split="train", shuffle_files=False).as_numpy_iterator()):
        user_id, item_id = _text(example.get("user_id", b"")).strip(), _text(example.get("movie_id", b"")).strip()
        where = f"{where_name}:{index}"
        if not user_id or not item_id:
            count_skip(report, where, "empty_id", config.on_error,
                       detail="no user_id" if not user_id else "no movie_id")
            continue
        rating = float(example.get("user_rating", 1.0))
        if not math.isfinite(rating):
            count_skip(report, where, "bad_rating", config.on_error, detail=f"{rating!r}")
            continue
        users.append(user_id)
        items.append(item_id)
        ratings.append(rating)
        timestamps.append(int(example.get("timestamp", 0)))
        lines.append(index)
        if "movie_title" in example and item_id not in item_table.titles:
            title = item_table.titles[item_id] = _text(example["movie_title"])
            genres = [int(genre) for genre in np.atleast_1d(example.get("movie_genres", []))]
            match = _TITLE_YEAR.search(title)
            item_table.rows[item_id] = {"genres": [genre_names[genre] if genre_names and genre < len(genre_names)
                                                   else str(genre) for genre in genres],
                                        "year": float(match.group(1)) if match else None}
        if "raw_user_age" in example and user_id not in user_table.rows:
            gender = example.get("user_gender")
            user_table.rows[user_id] = {
                "age": float(example["raw_user_age"]),
                "gender": "" if gender is None else ("M" if bool(gender) else "F"),
                "occupation": _text(example.get("user_occupation_text", b"")),
            }
    report["rows_read"] = len(lines) + report["skipped"]
    if not users:
        raise DataError(f"TFDS dataset {info.full_name}: no usable rating ({report['skipped']} skipped); choose a "
                        "MovieLens ratings dataset such as movielens/100k-ratings")
    raw = RawInteractions(where_name, np.asarray(users, dtype=str), np.asarray(items, dtype=str),
                          np.asarray(ratings, np.float32), np.asarray(timestamps, np.int64),
                          np.asarray(lines, np.int64))
    provenance = f"TFDS {info.full_name} ({info.homepage or 'tensorflow.org/datasets'}), GroupLens MovieLens ratings"
    details = {"tfds_name": name, "files": {"interactions": where_name}}
    return build_recommendation_data(raw, config, seed, provenance, report,
                                     user_table if user_table.rows else None,
                                     item_table if item_table.rows else None, details)


# --------------------------------------------------- data= (Python datasets)


COLUMNS = ("user", "item", "rating", "timestamp")


def recommendation_data(user, config, seed):
    """`RecommendationData` of interaction rows; the recipe's `data.split` cuts the splits."""
    if set(user.splits) != {"train"}:
        raise DataError("data: a recommender takes one table of interactions (data=rows); data.split "
                        "(random, leave_last_out, kfold) cuts validation and test from it")
    rows = user.splits["train"]
    if isinstance(rows, dict):
        columns = rows
    else:
        columns = {name: [] for name in COLUMNS}
        for index, row in enumerate(user.examples("train", batched_rank=1)):
            if not isinstance(row, dict) or "user" not in row or "item" not in row:
                raise DataError(f"data example {index}: expected a dict with 'user' and 'item' "
                                f"(and optionally 'rating', 'timestamp'); got {type(row).__name__}")
            for name in COLUMNS:
                columns[name].append(row.get(name, 1.0 if name == "rating" else index))
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown or "user" not in columns or "item" not in columns:
        raise DataError(f"data: interaction columns are {', '.join(COLUMNS)} (user and item required); "
                        f"got {', '.join(map(str, columns))}")
    count = len(columns["user"])
    if any(len(values) != count for values in columns.values()):
        raise DataError("data: the interaction columns have different lengths; give one value per row in each")
    if not count:
        raise DataError("data: no interactions")
    ids = lambda values: np.asarray([user_data.text(value) for value in values], dtype=str)  # noqa: E731
    raw = RawInteractions(
        "data", ids(columns["user"]), ids(columns["item"]),
        np.asarray(columns.get("rating", np.ones(count)), np.float32),
        np.asarray(columns.get("timestamp", np.arange(count)), np.int64), np.arange(count, dtype=np.int64))
    report = empty_report()
    report["rows_read"] = count
    return build_recommendation_data(raw, config, seed, "Python datasets given to toolkit.train", report)
