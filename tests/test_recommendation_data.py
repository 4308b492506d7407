"""Recommendation data: MovieLens layouts, csv tables, splits, id indexing, skip reports and errors.

Small tables are written in tmp_path; one test reads the real MovieLens-100k
from the toolkit's data cache (fetched from the recbole wheel when absent).
"""

import os
import types

import numpy as np
import pytest

from toolkit.errors import DataError
from toolkit.tasks.recommendation.config import RecommendationDataConfig
from toolkit.tasks.recommendation.sources import RECOMMENDATION_SOURCES, load_recommendation_data

# The real toolkit home, read before the autouse fixture points TOOLKIT_HOME at a temporary folder.
REAL_HOME = os.path.abspath(os.path.expanduser(os.environ.get("TOOLKIT_HOME", "~/.toolkit")))


def write(path, text, encoding="utf-8"):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode(encoding))
    return str(path)


def config(**fields):
    return RecommendationDataConfig(**fields)


def pairs(data, split):
    rows = data.splits[split]
    return {(str(data.user_ids[u]), str(data.item_ids[i])) for u, i in zip(rows.users, rows.items)}


def dense_table(tmp_path, users=20, items=15, name="ratings.csv"):
    """Every user rates every item, each in another order: no id is unknown to a split."""
    lines = ["user_id,item_id,rating,timestamp"]
    for user in range(users):
        for item in range(items):
            lines.append(f"{user},{item},{1 + (user + 2 * item) % 5},{1000 + 100 * ((item + user) % items) + user}")
    return write(tmp_path / name, "\n".join(lines) + "\n")


# --------------------------------------------------------------------- layouts


def write_100k(folder):
    ratings = [(1, 1, 5, 100), (1, 2, 3, 200), (1, 3, 4, 300), (2, 1, 4, 150), (2, 3, 2, 250), (2, 2, 1, 350),
               (3, 2, 5, 50), (3, 1, 3, 60), (3, 3, 4, 70)]
    write(folder / "u.data", "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings))
    flags = ["0"] * 19
    drama = list(flags)
    drama[8] = drama[12] = "1"  # Drama, Musical
    comedy = list(flags)
    comedy[5] = "1"
    items = [f"1|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Mis%E9rables|{'|'.join(drama)}",
             f"2|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/Toy|{'|'.join(comedy)}",
             f"3|unknown||||{'|'.join(['1'] + flags[1:])}"]
    write(folder / "u.item", "\n".join(items) + "\n", encoding="latin-1")
    write(folder / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    return folder


def test_movielens_100k_layout_reads_latin1_titles_genres_and_users(tmp_path):
    folder = write_100k(tmp_path / "ml-100k")
    data = load_recommendation_data(config(path=str(tmp_path), validation_fraction=0, split="leave_last_out"), 0)
    assert data.info["layout"] == "100k" and data.info["table"] == {"interactions": 9, "users": 3, "items": 3}
    assert data.info["files"]["items"] == os.path.join(str(folder), "u.item")
    assert list(data.user_ids) == ["1", "2", "3"] and list(data.item_ids) == ["1", "2", "3"]
    assert list(data.item_titles) == ["Misérables, Les (1995)", "Toy Story (1995)", "unknown"]
    genres = data.item_features.vocabularies["genres"]
    assert len(genres) == 19 and genres[8] == "Drama"
    assert np.flatnonzero(data.item_features.arrays["genres"][0]).tolist() == [8, 12]
    assert data.item_features.arrays["year"].tolist() == [1995.0, 1995.0, 1995.0]  # unknown date: the median
    users = data.user_features
    assert users.kinds == {"age": "numeric", "gender": "categorical", "occupation": "categorical"}
    assert users.arrays["age"].tolist() == [24.0, 53.0, 23.0]
    assert [users.vocabularies["gender"][index] for index in users.arrays["gender"]] == ["M", "F", "M"]
    assert users.vocabularies["occupation"][users.arrays["occupation"][2]] == "writer"
    assert "MovieLens (100k layout" in data.provenance
    assert pairs(data, "test") == {("1", "3"), ("2", "2"), ("3", "3")}


def test_movielens_latest_layout_reads_quoted_titles_with_commas(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,11,4.5,964982703\n1,22,3.0,964981247\n"
                                    "2,11,2.5,964982224\n2,33,5.0,964983815\n")
    write(tmp_path / "movies.csv", 'movieId,title,genres\n11,"American President, The (1995)",Comedy|Drama|Romance\n'
                                   '22,Heat (1995),Action|Crime|Thriller\n'
                                   '33,"Kiss, Kiss, Bang, Bang (2005)",(no genres listed)\n')
    data = load_recommendation_data(config(path=str(tmp_path), layout="latest", test_fraction=0.25,
                                           validation_fraction=0), 3)
    assert data.info["layout"] == "latest"
    everything = pairs(data, "train") | pairs(data, "test")
    titles = dict(zip(data.item_ids.tolist(), data.item_titles.tolist()))
    assert titles["11"] == "American President, The (1995)"
    assert len(everything) + sum(r["skipped"] for r in data.report.values()) == 4
    genres = data.item_features
    row = data.item_index["11"]
    assert [genres.vocabularies["genres"][i] for i in np.flatnonzero(genres.arrays["genres"][row])] == [
        "Comedy", "Drama", "Romance"]
    assert genres.arrays["year"][row] == 1995.0
    assert data.splits["train"].ratings.dtype == np.float32 and data.splits["train"].timestamps.dtype == np.int64
    assert data.user_features.names() == []


def test_movielens_recbole_atomic_layout(tmp_path):
    folder = tmp_path / "atomic"
    write(folder / "ml-100k.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                    "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t4\t881250950\n"
                                    "186\t242\t1\t891717743\n")
    write(folder / "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                   "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery\n")
    write(folder / "ml-100k.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                   "196\t49\tM\twriter\t55105\n186\t39\tF\texecutive\t00000\n")
    data = load_recommendation_data(config(path=str(folder), split="leave_last_out", validation_fraction=0), 0)
    assert data.info["layout"] == "recbole"
    assert list(data.user_ids) == ["186", "196"]
    assert data.item_titles.tolist() == ["Kolya (1996)", "L.A. Confidential (1997)"]
    assert data.item_features.vocabularies["genres"] == ["Comedy", "Crime", "Film-Noir", "Mystery"]
    assert data.user_features.arrays["age"].tolist() == [39.0, 49.0]
    assert pairs(data, "test") == {("196", "302"), ("186", "242")}


def test_csv_with_custom_columns_delimiter_and_implicit_feedback(tmp_path):
    path = write(tmp_path / "plays.txt", "when;listener;track\n2024-01-02T10:00:00;ann;t1\n2024-01-01;bob;t3\n"
                                         "2024-01-03;ann;t2\n2024-01-04;bob;t2\n2024-01-05;ann;t3\n2024-01-06;bob;t1\n")
    columns = {"user": "listener", "item": "track", "rating": None, "timestamp": "when", "delimiter": ";"}
    data = load_recommendation_data(config(source="csv", path=path, columns=columns, split="leave_last_out",
                                           validation_fraction=0), 0)
    assert data.info["implicit"] and set(data.splits["train"].ratings.tolist()) == {1.0}
    assert pairs(data, "test") == {("ann", "t3"), ("bob", "t1")}
    assert data.splits["test"].timestamps.tolist() == [1704412800, 1704499200]
    # No header: columns by position.
    path = write(tmp_path / "u.tsv", "".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\n" for u in range(4) for i in range(5)))
    columns = {"user": 0, "item": 1, "rating": 2, "timestamp": None, "header": False}
    data = load_recommendation_data(config(source="csv", path=path, columns=columns, test_fraction=0.2), 0)
    assert data.report["train"]["rows_read"] == 20 and data.user_ids.tolist() == ["0", "1", "2", "3"]


def test_csv_feature_tables_are_aligned_to_the_index(tmp_path):
    ratings = dense_table(tmp_path, users=4, items=6)
    users = write(tmp_path / "users.csv", "user_id,age,country\n3,40,fr\n0,20,de\n1,,fr\n9,99,it\n")
    items = write(tmp_path / "items.csv", "item_id,title,genres,price\n0,Zero,a|b,1.5\n2,Two,b,2.5\n")
    data = load_recommendation_data(config(source="csv", path=ratings, user_features=users, item_features=items,
                                           split="kfold", validation_fraction=0), 0)
    age, country = data.user_features.arrays["age"], data.user_features.arrays["country"]
    assert data.user_features.kinds == {"age": "numeric", "country": "categorical"}
    assert age.tolist() == [20.0, 30.0, 30.0, 40.0]  # users 1 (empty) and 2 (absent): the median of the indexed
    assert data.user_features.vocabularies["country"] == ["", "de", "fr", "it"]
    assert country.tolist() == [1, 2, 0, 2]
    assert data.item_titles.tolist() == ["Zero", "1", "Two", "3", "4", "5"]  # no title: the raw id
    assert data.item_features.arrays["genres"].tolist()[:3] == [[1, 1], [0, 0], [0, 1]]
    assert data.item_features.arrays["price"].dtype == np.float32


# ---------------------------------------------------------------------- splits


@pytest.mark.parametrize("split", ["random", "kfold"])
def test_splits_are_deterministic_per_seed_and_disjoint(tmp_path, split):
    path = dense_table(tmp_path)
    make = lambda seed: load_recommendation_data(config(source="csv", path=path, split=split), seed)  # noqa: E731
    first, again, other = make(1), make(1), make(2)
    for name in ("train", "validation", "test"):
        for field in ("users", "items", "ratings", "timestamps"):
            np.testing.assert_array_equal(getattr(first.splits[name], field), getattr(again.splits[name], field))
    assert pairs(first, "test") != pairs(other, "test")
    train, validation, test = (pairs(first, name) for name in ("train", "validation", "test"))
    assert not (train & validation) and not (train & test) and not (validation & test)
    assert len(train | validation | test) == 300 and len(test) == 60 and len(validation) == 24
    # The split seed of the recipe wins over the train seed.
    seeded = load_recommendation_data(config(source="csv", path=path, split=split, seed=1), 7)
    assert pairs(seeded, "test") == test and seeded.info["seed"] == 1


def test_kfold_test_folds_partition_the_rows(tmp_path):
    path = dense_table(tmp_path)
    folds = [pairs(load_recommendation_data(config(source="csv", path=path, split="kfold", fold=fold,
                                                   validation_fraction=0), 0), "test") for fold in range(5)]
    assert [len(fold) for fold in folds] == [60] * 5
    assert len(set().union(*folds)) == 300
    data = load_recommendation_data(config(source="csv", path=path, split="kfold", fold=3, validation_fraction=0), 0)
    assert len(data.splits["validation"]) == 0 and pairs(data, "train") == set().union(*folds) - folds[3]


def test_leave_last_out_holds_out_each_users_latest_interactions(tmp_path):
    rows = ["user,item,rating,timestamp"]
    rng = np.random.RandomState(0)
    latest = {}
    for user in range(8):
        stamps = rng.permutation(50)[:6] * 10
        for item, stamp in enumerate(stamps):
            rows.append(f"u{user},i{item},{1 + item % 5},{stamp}")
        order = np.argsort(stamps)
        latest[f"u{user}"] = (f"i{order[-1]}", f"i{order[-2]}")
    rows += ["few,i0,4,5", "few,i1,4,6", "single,i2,3,1"]  # fewer than 3 interactions: all in train
    path = write(tmp_path / "r.csv", "\n".join(rows) + "\n")
    columns = {"user": "user", "item": "item"}
    data = load_recommendation_data(config(source="csv", path=path, columns=columns, split="leave_last_out"), 0)
    assert pairs(data, "test") == {(user, items[0]) for user, items in latest.items()}
    assert pairs(data, "validation") == {(user, items[1]) for user, items in latest.items()}
    assert {("few", "i0"), ("few", "i1"), ("single", "i2")} <= pairs(data, "train")
    assert data.info["users_all_in_train"] == 2
    # Without validation a user needs only 2 interactions to give one to test.
    data = load_recommendation_data(config(source="csv", path=path, columns=columns, split="leave_last_out",
                                           validation_fraction=0), 0)
    assert ("few", "i1") in pairs(data, "test") and ("single", "i2") in pairs(data, "train")


# ------------------------------------------------------------- ids and reports


def test_unknown_users_and_items_of_test_rows_are_counted_and_dropped(tmp_path):
    path = dense_table(tmp_path, users=6, items=5, name="base.csv")
    with open(path, "a", encoding="utf-8") as f:
        f.write("lonely,0,4,1\n0,rare,2,999999\n")
    reasons = []
    for fold in range(5):
        data = load_recommendation_data(config(source="csv", path=path, split="kfold", fold=fold,
                                               validation_fraction=0), 0)
        assert "lonely" not in data.user_index or ("lonely", "0") in pairs(data, "train")
        reasons.append(data.report["test"]["skipped_reasons"])
        assert data.report["test"]["rows_read"] == data.report["test"]["examples"] + data.report["test"]["skipped"]
    assert sum(reason.get("unknown_user", 0) for reason in reasons) == 1
    assert sum(reason.get("unknown_item", 0) for reason in reasons) == 1
    example = next(e for fold in range(5) for e in load_recommendation_data(
        config(source="csv", path=path, split="kfold", fold=fold, validation_fraction=0), 0)
        .report["test"]["skipped_examples"] if "unknown_user" in e)
    assert example == f"{path}:32: unknown_user: user lonely is not in the training split"
    # Leave-last-out: an item whose only rating is some user's latest is unknown in test.
    data = load_recommendation_data(config(source="csv", path=path, split="leave_last_out"), 0)
    assert data.report["test"]["skipped_reasons"] == {"unknown_item": 1}
    assert data.user_indices(["0", "lonely", 5]).tolist() == [0, 6, 5]
    assert data.item_indices(["rare", "4"]).tolist() == [-1, 4]


def test_duplicates_keep_the_latest_row(tmp_path):
    path = write(tmp_path / "r.csv", "user_id,item_id,rating,timestamp\na,x,2,100\na,x,5,50\na,y,3,10\n"
                                     "a,x,4,200\nb,x,1,7\nb,x,2,7\nb,y,5,8\n")
    data = load_recommendation_data(config(source="csv", path=path, test_fraction=0.01, validation_fraction=0), 0)
    report = data.report["train"]
    assert report["skipped_reasons"] == {"duplicate": 3} and report["rows_read"] == 7
    assert data.info["rows"] == {"read": 7, "usable": 7, "unique": 4}
    kept = {}
    for name in ("train", "test"):
        rows = data.splits[name]
        for u, i, r in zip(rows.users, rows.items, rows.ratings):
            kept[(str(data.user_ids[u]), str(data.item_ids[i]))] = float(r)
    known = {key: value for key, value in kept.items() if key in {("a", "x"), ("b", "x")}}
    assert known == {("a", "x"): 4.0, ("b", "x"): 2.0}  # latest by time; the later line on a tie
    assert report["skipped_examples"][0] == f"{path}:2: duplicate: user a item x again later (the latest row is kept)"


def test_bad_rows_are_skipped_and_counted_or_fail(tmp_path):
    good = "".join(f"u{u},i{i},{1 + (u * i) % 5},{u * 10 + i}\n" for u in range(4) for i in range(4))
    bad = "u9,i1,abc,5\nu9,i2\n,i3,4,5\nu9,i4,4,yesterday\nu9,i5,nan,5\n"
    path = write(tmp_path / "r.csv", "user_id,item_id,rating,timestamp\n" + good + bad)
    with open(path, "ab") as f:
        f.write(b"u9,\xff\xfe,4,5\n")
    data = load_recommendation_data(config(source="csv", path=path), 0)
    report = data.report["train"]
    assert report["skipped_reasons"] == {"bad_rating": 2, "missing_columns": 1, "empty_id": 1, "bad_timestamp": 1,
                                         "not UTF-8": 1}
    assert report["rows_read"] == 22 and data.info["rows"]["usable"] == 16
    assert report["skipped_examples"][0] == f"{path}:18: bad_rating: 'abc' is not a number"
    with pytest.raises(DataError) as error:
        load_recommendation_data(config(source="csv", path=path, on_error="fail"), 0)
    message = str(error.value)
    assert message.startswith(f"{path}:18: bad_rating:") and "data.on_error: skip" in message and "\n" not in message


def test_missing_files_and_wrong_columns_are_one_line_errors(tmp_path):
    os.mkdir(tmp_path / "empty")
    cases = [
        (config(source="csv", path=str(tmp_path / "nope.csv")), "data.path"),
        (config(source="csv"), "data.path: required"),
        (config(path=str(tmp_path / "nowhere")), "does not exist"),
        (config(path=str(tmp_path / "empty")), "no MovieLens files"),
        (config(download=False), "toolkit data fetch movielens"),  # empty toolkit home, no download
    ]
    path = dense_table(tmp_path / "table")
    cases.append((config(source="csv", path=path, columns={"user": "usr"}), "data.columns.user: no column 'usr'"))
    cases.append((config(path=str(tmp_path / "table"), layout="recbole"), "a *.inter file"))
    write(tmp_path / "latest" / "ratings.csv", "user,movie,stars\n1,2,3\n")
    cases.append((config(path=str(tmp_path / "latest")), "no column 'userId'"))
    for recipe, expected in cases:
        with pytest.raises(DataError) as error:
            load_recommendation_data(recipe, 0)
        assert expected in str(error.value) and "\n" not in str(error.value)
    write_100k(tmp_path / "broken")
    os.remove(tmp_path / "broken" / "u.item")  # optional: titles fall back to the ids
    data = load_recommendation_data(config(path=str(tmp_path / "broken")), 0)
    assert data.item_titles.tolist() == data.item_ids.tolist()


def test_data_helpers_positives_items_by_user_popularity(tmp_path):
    path = dense_table(tmp_path, users=5, items=6)
    data = load_recommendation_data(config(source="csv", path=path, min_rating=4, split="leave_last_out"), 0)
    train = data.splits["train"]
    positives = data.positives("train")
    assert len(positives) == int((train.ratings >= 4).sum()) and positives.ratings.min() >= 4
    by_user = data.items_by_user("train")
    assert len(by_user) == 5 and sum(map(len, by_user)) == len(train)
    assert sorted(by_user[2].tolist()) == sorted(train.items[train.users == 2].tolist())
    assert by_user[2].tolist() == sorted(by_user[2].tolist())
    assert data.items_by_user("train", positives_only=True)[2].tolist() == sorted(
        positives.items[positives.users == 2].tolist())
    popularity = data.item_popularity()
    assert popularity.shape == (6,) and popularity.sum() == len(positives)
    assert data.info["rating_scale"] == [1.0, 5.0] and data.info["min_rating"] == 4


def test_limits_cap_the_splits(tmp_path):
    path = dense_table(tmp_path)
    data = load_recommendation_data(config(source="csv", path=path, limit={"train": 50, "test": 7}), 0)
    assert len(data.splits["train"]) == 50 and len(data.splits["test"]) == 7


def test_config_checks():
    with pytest.raises(ValueError, match="fold: 5 is not below folds"):
        config(split="kfold", fold=5)
    with pytest.raises(ValueError, match="0-based position"):
        config(columns={"header": False})
    with pytest.raises(ValueError, match="different columns"):
        config(columns={"user": "id", "item": "id"})
    with pytest.raises(ValueError, match="extra"):
        config(colums={})
    assert RECOMMENDATION_SOURCES.names() == ["csv", "datasets", "movielens", "tfds"]


# ------------------------------------------------------------------------ TFDS


class FakeDataset:
    def __init__(self, examples):
        self.examples = examples

    def as_numpy_iterator(self):
        return iter(self.examples)


def test_tfds_ratings_are_read_with_features(monkeypatch):
    import toolkit.data.tfds as sources

    examples = [{"user_id": str(u).encode(), "movie_id": str(i).encode(), "user_rating": np.float32(1 + (u + i) % 5),
                 "timestamp": np.int64(100 * u + (i + u) % 5), "movie_title": f"Movie {i} (199{i})".encode(),
                 "movie_genres": np.asarray([i % 3], np.int64), "raw_user_age": np.float32(20 + u),
                 "user_gender": bool(u % 2), "user_occupation_text": b"student" if u < 3 else b"writer"}
                for u in range(6) for i in range(5)]
    genres = types.SimpleNamespace(feature=types.SimpleNamespace(names=["Action", "Comedy", "Drama"]))
    info = types.SimpleNamespace(full_name="movielens/100k-ratings/0.1.1", homepage="https://grouplens.org",
                                 features={"movie_genres": genres})
    builder = types.SimpleNamespace(as_dataset=lambda split, shuffle_files: FakeDataset(examples))
    seen = {}

    def fake_prepare(name, recipe):
        seen["name"] = name
        return builder, info

    monkeypatch.setattr(sources, "prepare_tfds", fake_prepare)
    data = load_recommendation_data(config(source="tfds", split="leave_last_out"), 0)
    assert seen["name"] == "movielens/100k-ratings" and data.provenance.startswith("TFDS movielens/100k-ratings")
    assert data.num_users == 6 and pairs(data, "test") == {(str(u), str((4 - u) % 5)) for u in range(6)}
    assert pairs(data, "validation") == {(str(u), str((3 - u) % 5)) for u in range(6)}
    assert data.item_titles[data.item_index["2"]] == "Movie 2 (1992)"
    assert data.item_features.arrays["year"][data.item_index["2"]] == 1992.0
    assert data.item_features.vocabularies["genres"] == ["Action", "Comedy", "Drama"]
    assert data.item_features.arrays["genres"][data.item_index["2"]].tolist() == [0, 0, 1]
    assert data.user_features.arrays["age"].tolist() == [20, 21, 22, 23, 24, 25]
    gender = data.user_features
    assert [gender.vocabularies["gender"][g] for g in gender.arrays["gender"][:2]] == ["F", "M"]

    def offline(name, recipe):
        raise DataError(f"TFDS dataset {name} is not on disk in /x and this machine is offline; run `tfds build "
                        f"{name}` on a connected machine and copy ~/tensorflow_datasets, or use data.source: folder")

    monkeypatch.setattr(sources, "prepare_tfds", offline)
    with pytest.raises(DataError, match="tfds build movielens/100k-ratings.*toolkit data fetch movielens"):
        load_recommendation_data(config(source="tfds"), 0)


# ------------------------------------------------------------- real MovieLens


def test_real_movielens_100k_from_the_recbole_wheel(monkeypatch):
    from toolkit.data.fetch import fetch_dataset

    monkeypatch.setenv("TOOLKIT_HOME", REAL_HOME)
    try:
        fetch_dataset("movielens")  # a no-op when cached; else pip download from PyPI
    except DataError as error:
        pytest.skip(f"MovieLens-100k not cached and not downloadable: {error}")
    data = load_recommendation_data(config(split="kfold", validation_fraction=0), 0)
    assert data.info["layout"] == "recbole"
    assert data.info["table"] == {"interactions": 100000, "users": 943, "items": 1682}
    assert data.report["train"]["skipped"] == 0 and data.report["train"]["rows_read"] == 100000
    assert len(data.splits["train"]) == 80000 and data.num_users == 943
    assert len(data.splits["test"]) + data.report["test"]["skipped"] == 20000
    assert set(data.report["test"]["skipped_reasons"]) <= {"unknown_item"}
    assert data.item_titles[data.item_index["1"]] == "Toy Story (1995)"
    assert len(data.item_features.vocabularies["genres"]) == 19
    assert len(data.user_features.vocabularies["occupation"]) == 22  # 21 occupations and ""
    assert "recbole 1.2.1" in data.provenance and "GroupLens MovieLens 100K" in data.provenance
