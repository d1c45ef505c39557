"""Calibration and Grad-CAM pointing of a fracture classifier on the group-aware splits.

``scores``: the model's raw logits on the validation split (where the bundled model was
selected: the temperature is fitted there) and on the held-out test split (only reported), plus
the Grad-CAM pointing game on the fractured test images, saved to a JSON file.
``crossval``: the decision whether to ship a temperature, made on the validation split only:
5-fold cross-fitting over its source-image groups (the temperature fitted on four folds scores
the fifth), out-of-fold NLL (the proper score temperature scaling minimises) and ECE against no
temperature (T = 1, the reference, same folds), with paired 95 % group-bootstrap intervals. No
test figure is read.
``report``: from that file, the test split's AUC, ECE and NLL before and after temperature
scaling fitted on validation, with 95 % group-bootstrap intervals of the ECE and of the
change (paired), and the pointing hit rate against chance.

    python benchmarks/bench_fracture_calibration.py scores --out /tmp/scores.json
    python benchmarks/bench_fracture_calibration.py crossval /tmp/scores.json
    python benchmarks/bench_fracture_calibration.py report /tmp/scores.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from insightray.config import data_root
from insightray.training.fracture.config import FractureTrainConfig
from insightray.training.fracture.dataset import load_fracture_items, split_by_group

DATA = data_root() / "fracture" / "bone_fracture_roboflow"


def run_scores(args: argparse.Namespace) -> None:
    from insightray.engine import load_predictor
    from insightray.explain import gradcam_heatmap
    from insightray.imaging import read_image
    from insightray.training.fracture.pointing import box_class_id, peak_in_boxes, read_yolo_boxes

    torch.set_num_threads(args.threads)
    config = FractureTrainConfig()
    splits = split_by_group(
        load_fracture_items(DATA),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.split_seed,
    )
    predictor = load_predictor(args.model, task="classification")
    record: dict[str, object] = {"model": f"{predictor.card.name} {predictor.card.version}"}
    for name in ("val", "test"):
        items = getattr(splits, name)
        logits = []
        for start in range(0, len(items), 8):
            chunk = items[start : start + 8]
            logits.extend(predictor.predict_logits([read_image(i.path).pixels for i in chunk]))
        record[name] = {
            "labels": [item.label for item in items],
            "groups": [item.group for item in items],
            "logits": [float(value) for value in logits],
        }
        print(f"{name}: {len(items)} images scored", flush=True)
    labels_dir = DATA / "labels"
    class_id = box_class_id(labels_dir)
    hits, shares, groups = [], [], []
    for item in (item for item in splits.test if item.label == 1):
        boxes = read_yolo_boxes(labels_dir / f"{item.path.stem}.txt", class_id)
        if boxes:
            hit, share = peak_in_boxes(
                gradcam_heatmap(predictor, read_image(item.path).pixels), boxes
            )
            hits.append(hit)
            shares.append(share)
            groups.append(item.group)
    record["pointing"] = {"hits": hits, "shares": shares, "groups": groups}
    Path(args.out).write_text(json.dumps(record) + "\n")
    print(f"wrote {args.out}")


def _group_bootstrap(groups: list[str], resamples: int, seed: int = 0) -> list[np.ndarray]:
    names = np.asarray(groups)
    clusters = [np.flatnonzero(names == g) for g in dict.fromkeys(groups)]
    rng = np.random.default_rng(seed)
    return [
        np.concatenate([clusters[c] for c in rng.integers(0, len(clusters), len(clusters))])
        for _ in range(resamples)
    ]


def run_crossval(args: argparse.Namespace) -> None:
    from sklearn.model_selection import GroupKFold

    from insightray.training.metrics.calibration import expected_calibration_error
    from insightray.training.metrics.temperature import (
        binary_nll,
        fit_temperature,
        scaled_probabilities,
    )

    val = json.loads(Path(args.scores).read_text())["val"]
    y, z, groups = np.asarray(val["labels"]), np.asarray(val["logits"]), val["groups"]
    calibrated = np.zeros(y.size)
    temperatures = []
    for fit, held in GroupKFold(5, shuffle=True, random_state=0).split(z, y, groups):
        temperatures.append(fit_temperature(y[fit], z[fit]))
        calibrated[held] = scaled_probabilities(z[held], temperatures[-1])
    reference = scaled_probabilities(z, 1.0)
    draws = _group_bootstrap(groups, args.resamples)
    for name, score in (("NLL", binary_nll), ("ECE", expected_calibration_error)):
        change = [score(y[i], calibrated[i]) - score(y[i], reference[i]) for i in draws]
        low, high = np.percentile(change, [2.5, 97.5])
        print(
            f"val out-of-fold {name}: T = 1 {score(y, reference):.3f}, cross-fitted T "
            f"{score(y, calibrated):.3f}, change {score(y, calibrated) - score(y, reference):+.3f}"
            f" [{low:+.3f}, {high:+.3f}] (paired group bootstrap)"
        )
    print(
        f"fold temperatures {', '.join(f'{t:.2f}' for t in temperatures)}; "
        f"{y.size} validation images, {len(set(groups))} groups"
    )


def run_report(args: argparse.Namespace) -> None:
    from insightray.training.fracture.pointing import summarise_pointing
    from insightray.training.metrics.calibration import expected_calibration_error
    from insightray.training.metrics.roc import bootstrap_auc_ci, roc_auc
    from insightray.training.metrics.temperature import (
        binary_nll,
        fit_temperature,
        scaled_probabilities,
    )

    record = json.loads(Path(args.scores).read_text())
    val, test = record["val"], record["test"]
    temperature = fit_temperature(val["labels"], val["logits"])
    y = np.asarray(test["labels"])
    z = np.asarray(test["logits"])
    before, after = scaled_probabilities(z, 1.0), scaled_probabilities(z, temperature)
    draws = _group_bootstrap(test["groups"], args.resamples)
    ece_b = [expected_calibration_error(y[i], before[i]) for i in draws]
    ece_a = [expected_calibration_error(y[i], after[i]) for i in draws]
    diff = np.subtract(ece_a, ece_b)

    def ci(values: list[float] | np.ndarray) -> str:
        low, high = np.percentile(values, [2.5, 97.5])
        return f"[{low:.3f}, {high:.3f}]"

    auc_low, auc_high = bootstrap_auc_ci(y, z, groups=test["groups"], resamples=args.resamples)
    print(
        f"model {record['model']}; temperature fitted on val ({len(val['labels'])} images): "
        f"{temperature:.3f}"
    )
    print(
        f"test ({y.size} images, {int(y.sum())} fractured): AUC {roc_auc(y, z):.3f} "
        f"[{auc_low:.3f}, {auc_high:.3f}] (unchanged by temperature)"
    )
    ece_before, ece_after = (
        expected_calibration_error(y, before),
        expected_calibration_error(y, after),
    )
    print(
        f"test ECE uncalibrated {ece_before:.3f} {ci(ece_b)}, calibrated {ece_after:.3f} "
        f"{ci(ece_a)}, change {ece_after - ece_before:+.3f} {ci(diff)} (paired group bootstrap)"
    )
    print(
        f"test NLL uncalibrated {binary_nll(y, before):.3f}, calibrated {binary_nll(y, after):.3f}"
    )
    vy, vz = np.asarray(val["labels"]), np.asarray(val["logits"])
    print(
        f"val (fit set) ECE {expected_calibration_error(vy, scaled_probabilities(vz, 1.0)):.3f}"
        f" -> {expected_calibration_error(vy, scaled_probabilities(vz, temperature)):.3f}, NLL "
        f"{binary_nll(vy, scaled_probabilities(vz, 1.0)):.3f} -> "
        f"{binary_nll(vy, scaled_probabilities(vz, temperature)):.3f}"
    )
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e6).fit(vz[:, None], vy)
    platt_test = platt.predict_proba(z[:, None])[:, 1]
    print(
        f"for comparison, Platt scaling (a*logit + b, fitted on val; not shipped): test ECE "
        f"{expected_calibration_error(y, platt_test):.3f}, NLL {binary_nll(y, platt_test):.3f}"
    )
    pointing = record["pointing"]
    game = summarise_pointing(
        pointing["hits"], pointing["shares"], groups=pointing["groups"], resamples=args.resamples
    )
    print(
        f"pointing (fractured test images with a box): {game.hits}/{game.images} = "
        f"{game.rate:.3f} [{game.rate_ci[0]:.3f}, {game.rate_ci[1]:.3f}], chance {game.chance:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    scores = sub.add_parser("scores")
    scores.add_argument("--model", default=None)
    scores.add_argument("--out", required=True)
    scores.add_argument("--threads", type=int, default=2)
    for command in ("crossval", "report"):
        parser_ = sub.add_parser(command)
        parser_.add_argument("scores")
        parser_.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    {"scores": run_scores, "crossval": run_crossval, "report": run_report}[args.command](args)


if __name__ == "__main__":
    main()
