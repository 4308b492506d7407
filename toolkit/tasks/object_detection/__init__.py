"""Object detection: boxes, classes and scores from an anchor-free head on any backbone, NMS inside every export.

Files: `task.py` (recipe, model assembly, COCO evaluation, plots, serving signatures), `model.py` (the head, its
loss, in-graph decoding and NMS), `predictor.py` (detections in every runtime, post-NMS parity, drawn boxes and
COCO-style JSON; no TensorFlow), `boxes.py` (box formats, IoU, matching), `metrics.py` (pycocotools),
`sources.py` (COCO JSON, Pascal VOC, YOLO txt, TFDS, fashion detection scenes), `pipeline.py` (tf.data with
box-aware augmentation), `convert.py` (`toolkit data convert` between the three layouts).
"""

from toolkit.config.tasks import TASKS, DataVerb, register_data_verb
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("object_detection", "toolkit.tasks.object_detection.task:DetectionTask")
PREDICTORS.register_lazy("object_detection", "toolkit.tasks.object_detection.predictor:DetectionPredictor")
register_data_verb(DataVerb(
    name="convert", help="convert object detection annotations between COCO JSON, Pascal VOC and YOLO txt",
    description="Read a detection dataset in one layout (coco, voc or yolo, as data.source reads it) and write "
                "it in another, images copied beside the annotations; bad annotations are skipped and counted. "
                "Splits are kept; a layout without splits is written as train.",
    epilog="Example: toolkit data convert --from voc --to yolo VOCdevkit/VOC2007 voc_as_yolo",
    arguments=[
        (("source",), {"metavar": "SOURCE_DIR", "help": "the dataset to read"}),
        (("output",), {"metavar": "OUTPUT_DIR", "help": "where to write (must not exist or be empty)"}),
        (("--from",), {"dest": "source_format", "required": True, "choices": ["coco", "voc", "yolo"],
                       "help": "layout of SOURCE_DIR"}),
        (("--to",), {"dest": "target_format", "required": True, "choices": ["coco", "voc", "yolo"],
                     "help": "layout to write"}),
        (("--classes",), {"help": "comma-separated class names (YOLO sources without classes.txt)"}),
    ],
    handler="toolkit.tasks.object_detection.convert:convert_command",
))
