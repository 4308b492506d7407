"""Recipe schema of the text classification data: sources, columns, labels and the two offline corpora.

`BIBLE_GENRES` maps each genre of the `bible_genre` source to the OSIS names of its books.

Example:

>>> from toolkit.tasks.text_classification.config import BIBLE_GENRES, TextClassDataConfig
>>> config = TextClassDataConfig(path="reviews.csv", text_column="review", label_column="sentiment")
>>> config.source, config.delimiter, config.multi_label
('csv', None, False)
>>> list(BIBLE_GENRES)[:3], config.fortunes.categories[0]
(['law', 'history', 'wisdom'], 'computers')
"""

from typing import Literal, Optional

from pydantic import Field, NonNegativeInt, field_validator, model_validator

from toolkit.config.schema import DataConfig, StrictModel
from toolkit.data.text import normalize_text

# The genre of each book of the Protestant canon, by OSIS name (the book names of the Bible cache).
BIBLE_GENRES = {
    "law": ["Gen", "Exod", "Lev", "Num", "Deut"],
    "history": ["Josh", "Judg", "Ruth", "1Sam", "2Sam", "1Kgs", "2Kgs", "1Chr", "2Chr", "Ezra", "Neh", "Esth",
                "Acts"],
    "wisdom": ["Job", "Ps", "Prov", "Eccl", "Song"],
    "prophets": ["Isa", "Jer", "Lam", "Ezek", "Dan", "Hos", "Joel", "Amos", "Obad", "Jonah", "Mic", "Nah", "Hab",
                 "Zeph", "Hag", "Zech", "Mal"],
    "gospels": ["Matt", "Mark", "Luke", "John"],
    "letters": ["Rom", "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess", "2Thess", "1Tim", "2Tim", "Titus",
                "Phlm", "Heb", "Jas", "1Pet", "2Pet", "1John", "2John", "3John", "Jude"],
    "apocalyptic": ["Rev"],
}
FORTUNE_CATEGORIES = ["computers", "people", "politics", "science", "men-women"]


def _listed_once(value, what):
    repeated = sorted({item for item in value if value.count(item) > 1})
    if repeated:
        raise ValueError(f"{what} listed twice: {', '.join(map(repr, repeated))}")
    return value


class BibleGenreConfig(StrictModel):
    """`data.source: bible_genre`: Bible verses labelled with the genre of their book (BIBLE_GENRES)."""

    language: Literal["en", "es"] = Field("en", description="en: World English Bible, es: Reina-Valera 1909 "
                                                            "(both public domain)")
    sword_path: str = Field("/usr/share/sword", description="SWORD library (Debian packages sword-text-web and "
                                                            "sword-text-sparv)")


class FortunesConfig(StrictModel):
    """`data.source: fortunes`: the BSD fortune cookies of the Debian package fortunes, labelled by file."""

    path: str = Field("/usr/share/games/fortunes", description="directory of fortune files (Debian package "
                                                               "fortunes)")
    categories: list[str] = Field(default_factory=lambda: list(FORTUNE_CATEGORIES),
                                  description="the classes: each is one fortune file in data.fortunes.path")

    @field_validator("categories")
    @classmethod
    def _check_categories(cls, value):
        if not value:
            raise ValueError("empty; name at least two fortune files, e.g. [computers, people]")
        return _listed_once(value, "category")


class TextClassDataConfig(DataConfig):
    """Texts with one label each (or several, with multi_label)."""

    source: str = Field("csv", description="data source: csv, folder, jsonl, tfds, bible_genre, fortunes "
                                           "(toolkit list sources)")
    text_column: str = Field("text", description="csv/jsonl: the column or key holding the text (tfds: the text "
                                                 "feature; default the dataset's supervised input)")
    label_column: str = Field("label", description="csv/jsonl: the column or key holding the label(s)")
    delimiter: Optional[str] = Field(None, description="csv: field separator (default: tab for .tsv and .tab "
                                                       "files, comma otherwise)")
    multi_label: bool = Field(False, description="every text may have several labels, or none (sigmoid outputs)")
    label_separator: str = Field("|", description="multi_label csv: labels joined in one column, e.g. "
                                                  "sports|politics (jsonl may give a list)")
    classes: Optional[list[str]] = Field(
        None, description="keep only these labels, in this order (other texts are skipped as unknown label; "
                          "multi_label drops the other labels); default: every label of the training split, sorted")
    min_characters: NonNegativeInt = Field(1, description="shorter texts (after normalisation) are skipped as "
                                                          "empty text (0 and 1 keep every non-empty text)")
    bible: BibleGenreConfig = Field(default_factory=BibleGenreConfig, description="bible_genre source")
    fortunes: FortunesConfig = Field(default_factory=FortunesConfig, description="fortunes source")

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, value):
        if value is not None:
            if not value:
                raise ValueError("empty; list the classes to keep, or leave classes out for every label")
            value = [normalize_text(str(name)) for name in value]
            if not all(value):
                raise ValueError("a class name is empty")
            _listed_once(value, "class")
        return value

    @field_validator("delimiter")
    @classmethod
    def _check_delimiter(cls, value):
        if value is not None and len(value) != 1:
            raise ValueError(f"expected one character such as ',' or '\\t', got {value!r}")
        return value

    @field_validator("label_separator")
    @classmethod
    def _check_separator(cls, value):
        if not value:
            raise ValueError("empty; set the character between labels, e.g. '|'")
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.text_column == self.label_column:
            raise ValueError(f"text_column and label_column are both {self.text_column!r}; set one to the other "
                             "column")
        return self
