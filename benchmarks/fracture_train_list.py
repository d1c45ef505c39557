"""Write the bundled fracture classifier's training images as a list for ``monitor profile``.

The split is the one the classifier was trained on (its card: group-aware stratified split of
bone_fracture_roboflow by source image, ``split_seed`` 0, 15 % validation and 15 % test
groups), rebuilt with the trainer's own :func:`split_by_group`.

    python benchmarks/fracture_train_list.py /tmp/fracture_train.txt
    insightray monitor profile --model fracture-roboflow-lite0 --data /tmp/fracture_train.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from insightray.training.fracture.config import FractureTrainConfig
from insightray.training.fracture.dataset import load_fracture_items, split_by_group

DATA = Path(__file__).resolve().parents[1] / "../shared/data/fracture/bone_fracture_roboflow"


def main() -> None:
    """Write the list; print the split sizes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="The .txt list to write (absolute paths).")
    parser.add_argument("--data", type=Path, default=DATA.resolve())
    parser.add_argument("--held-out", type=Path, help="Also list validation + test images here.")
    args = parser.parse_args()
    config = FractureTrainConfig()
    splits = split_by_group(
        load_fracture_items(args.data),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.split_seed,
    )
    args.out.write_text("".join(f"{item.path.resolve()}\n" for item in splits.train))
    if args.held_out is not None:
        held_out = [*splits.val, *splits.test]
        args.held_out.write_text("".join(f"{item.path.resolve()}\n" for item in held_out))
    print(f"train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}")


if __name__ == "__main__":
    main()
