"""Training, one package per task, plus what the tasks share.

Tasks: :mod:`~insightray.training.detection` (YOLO detector: datasets, loss, AutoAnchor, the
loop), :mod:`~insightray.training.fracture` (radiograph classifier),
:mod:`~insightray.training.ner` (BiLSTM-CRF tagger and the BERT token-classifier
comparison), :mod:`~insightray.training.textcls` (BERT text classifier) and
:mod:`~insightray.training.intents` (the assistant's intent head). Shared:
:mod:`~insightray.training.augment` (box-aware image augmentation),
:mod:`~insightray.training.metrics`, :mod:`~insightray.training.configfile` (YAML/JSON run
configs) and :mod:`~insightray.training.runtime` (seeds, devices, threads, run folders).

Run-time inference never imports this package: what a trained model needs at prediction time
lives in :mod:`insightray.models` and :mod:`insightray.engine`.
"""
