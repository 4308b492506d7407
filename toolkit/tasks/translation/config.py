"""Recipe schema of the machine translation task.

Example:

>>> from toolkit.tasks.translation.config import TranslationDataConfig
>>> TranslationDataConfig().source
'bible'
"""

from typing import Literal, Optional

from pydantic import Field, PositiveInt

from toolkit.config.schema import DataConfig, StrictModel

# Held-out books of the offline Bible corpus (OSIS names): narrative, prophecy,
# gospel and letters, about 1,000 verses; no verse of them is used in training.
DEFAULT_TEST_BOOKS = ["Ruth", "Jonah", "Mark", "Titus", "Jas"]


class TranslationDataConfig(DataConfig):
    """Parallel text: (source, target) sentence pairs."""

    source: str = Field("bible", description="data source: tsv, tfds or bible (toolkit list sources)")
    source_language: str = Field("en", description="language code of the source side (bible: en or es)")
    target_language: str = Field("es", description="language code of the target side (bible: en or es)")
    test_books: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TEST_BOOKS),
        description="bible: OSIS names of the books held out as the test split (no verse of them in training)",
    )
    sword_path: str = Field("/usr/share/sword", description="bible: SWORD library (Debian sword-text-* packages)")
    validation_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="share of training pairs held out (random) for validation"
    )
    test_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="share held out for test when the source has no test split (tsv, tfds)"
    )


class TokenizerConfig(StrictModel):
    """Subword tokenizers, learned from the training split only."""

    kind: Literal["sentencepiece"] = Field("sentencepiece", description="tokenizer family (SentencePiece unigram)")
    source_vocabulary: PositiveInt = Field(8000, description="source vocabulary size")
    target_vocabulary: PositiveInt = Field(8000, description="target vocabulary size")
    max_length: PositiveInt = Field(64, description="max tokens per side (longer pairs are truncated)")
    vocabulary: Optional[str] = Field(None, description="directory with saved tokenizers to reuse instead of learning")
