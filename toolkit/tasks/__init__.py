"""The task registry. Adding a task is adding a module that subclasses
`toolkit.tasks.base.Task` and registering it here.

Example:

>>> from toolkit.tasks import TASKS
>>> TASKS.names()
['image_classification', 'recommendation', 'segmentation', 'speech_recognition', 'translation']
"""

from toolkit.errors import RecipeError
from toolkit.registry import Registry
from toolkit.tasks.image_classification import ImageClassificationTask
from toolkit.tasks.recommendation import RecommendationTask
from toolkit.tasks.segmentation import SegmentationTask
from toolkit.tasks.speech_recognition import SpeechRecognitionTask
from toolkit.tasks.translation import TranslationTask

TASKS = Registry("task", RecipeError)
TASKS.register(ImageClassificationTask.name, ImageClassificationTask)
TASKS.register(RecommendationTask.name, RecommendationTask)
TASKS.register(SegmentationTask.name, SegmentationTask)
TASKS.register(SpeechRecognitionTask.name, SpeechRecognitionTask)
TASKS.register(TranslationTask.name, TranslationTask)


def make_task(recipe):
    """Returns the task object for a validated recipe."""
    return TASKS.get(recipe.task)(recipe)


def task_class(name):
    """Returns the task class registered as `name`."""
    return TASKS.get(name)
