"""Write the bundled fracture classifier's group-aware splits as labelled CSVs.

The split is the trainer's own (:func:`split_by_group` with the default fractions and
``split_seed`` 0, as in the bundled card), so ``val.csv`` is the validation split the model was
selected on (fit a temperature there) and ``test.csv`` the held-out test split (report there,
never fit). Each CSV has ``path,label,group`` with absolute paths, a layout ``evaluate
fracture`` and ``calibrate fracture`` read.

    python benchmarks/fracture_split_csv.py /tmp/fracture_splits
    insightray evaluate fracture --data /tmp/fracture_splits/test.csv \\
        --boxes ../shared/data/fracture/bone_fracture_roboflow/labels
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from insightray.config import data_root
from insightray.training.fracture.config import FractureTrainConfig
from insightray.training.fracture.dataset import load_fracture_items, split_by_group

DATA = data_root() / "fracture" / "bone_fracture_roboflow"


def main() -> None:
    """Write train.csv, val.csv and test.csv; print their sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="Folder for the CSVs.")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    config = FractureTrainConfig()
    splits = split_by_group(
        load_fracture_items(args.data),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.split_seed,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, items in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        with (args.out / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "group"])
            writer.writerows([item.path.resolve(), item.label, item.group] for item in items)
        print(f"{name}: {len(items)} images, {sum(i.label for i in items)} fractured")


if __name__ == "__main__":
    main()
