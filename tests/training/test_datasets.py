"""Tests for the detection dataset loaders (insightray.training.detection.datasets)."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from ensemble_boxes import weighted_boxes_fusion
from PIL import Image

from insightray.errors import ConfigError, InputError, InputNotFoundError
from insightray.imaging import read_image
from insightray.training.detection.datasets import (
    VINBIGDATA_CLASS_NAMES,
    DetectionDataset,
    DetectionRecord,
    label_path,
    load_coco,
    load_data_config,
    load_sample,
    load_split,
    load_vinbigdata,
    read_image_size,
    summarize,
)
from tests.imaging.helpers import write_dicom

VIN_HEADER = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]


def _need(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.exists():
        pytest.skip(f"{relative} not found under {root}")
    return path


def _png(path: Path, rows: int, cols: int, dtype: type = np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    top = np.iinfo(dtype).max
    image = np.random.default_rng(rows * cols).integers(0, top, (rows, cols), endpoint=True)
    assert cv2.imwrite(str(path), image.astype(dtype))
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- YOLO on the real TBX11K subset -------------------------------------------------------------


@pytest.fixture(scope="module")
def tbx11k(shared_data: Path) -> tuple[DetectionDataset, DetectionDataset]:
    config = load_data_config(_need(shared_data, "cxr/tbx11k/data.yaml"))
    return load_split(config, "train"), load_split(config, "val")


def test_tbx11k_counts_match_readme(tbx11k: tuple[DetectionDataset, DetectionDataset]) -> None:
    train, val = tbx11k
    assert (len(train), len(val)) == (500, 100)
    assert train.class_names == ["ActiveTuberculosis", "ObsoletePulmonaryTuberculosis"]
    per_class = Counter(summarize(train)["boxes_per_class"]) + Counter(
        summarize(val)["boxes_per_class"]
    )
    assert per_class == {"ActiveTuberculosis": 724, "ObsoletePulmonaryTuberculosis": 178}
    assert summarize(train)["boxes"] + summarize(val)["boxes"] == 902
    assert summarize(train)["negatives"] + summarize(val)["negatives"] == 1  # README: 1 image
    assert {r.image_path.name for r in train.records}.isdisjoint(
        r.image_path.name for r in val.records
    )


def test_tbx11k_known_label_converts_to_pixels(
    tbx11k: tuple[DetectionDataset, DetectionDataset],
) -> None:
    record = next(r for r in tbx11k[0].records if r.image_path.name == "tb0005.jpg")
    fields = label_path(record.image_path).read_text().split()
    cls, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:])
    rows, cols = read_image(record.image_path).pixels.shape
    assert record.image_size == (rows, cols) == (512, 512)
    expected = [(cx - w / 2) * cols, (cy - h / 2) * rows, (cx + w / 2) * cols, (cy + h / 2) * rows]
    np.testing.assert_allclose(record.boxes, [expected], rtol=1e-6)
    assert record.labels.tolist() == [cls] == [0]
    np.testing.assert_allclose(record.boxes[0], [381.83, 126.87, 422.07, 171.44], atol=0.01)


# --- YOLO on tiny folders built here ------------------------------------------------------------


def test_folder_split_and_list_file(tmp_path: Path) -> None:
    _png(tmp_path / "images/train/a.png", 40, 80)
    _png(tmp_path / "images/train/sub/b.png", 50, 50)  # no label file: a negative
    _png(tmp_path / "images/train/.hidden/c.png", 10, 10)
    _write(tmp_path / "labels/train/a.txt", "1 0.5 0.5 0.25 0.5\n\n0 0.1 0.1 0.2 0.2\n")
    _png(tmp_path / "images/val/v.png", 20, 20)
    _write(tmp_path / "lists/val.txt", "# comment\n../images/val/v.png\n")
    _write(
        tmp_path / "cfg/data.yaml",
        "path: ..\ntrain: images/train\nval: [lists/val.txt]\nnames: {0: nodule, 1: mass}\nnc: 2\n",
    )
    config = load_data_config(tmp_path / "cfg/data.yaml")
    train = load_split(config, "train")
    assert [r.image_path.name for r in train.records] == ["a.png", "b.png"]
    a, b = train.records
    assert a.image_size == (40, 80) and b.image_size == (50, 50)
    np.testing.assert_allclose(a.boxes, [[30, 10, 50, 30], [0, 0, 16, 8]])
    assert a.labels.tolist() == [1, 0] and len(b) == 0
    assert [r.image_path.name for r in load_split(config, "val").records] == ["v.png"]
    assert summarize(train) == {
        "images": 2,
        "negatives": 1,
        "boxes": 2,
        "boxes_per_class": {"nodule": 1, "mass": 1},
    }
    with pytest.raises(ConfigError, match="no 'test' split"):
        load_split(config, "test")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("train: a\nval: a\nnames: [x]\ndownload: http://x\n", "unknown key"),
        ("train: a\nnames: [x]\n", "missing key.*val"),
        ("train: a\nval: a\nnames: {0: x, 2: y}\n", "0, 1, ..., n-1"),
        ("train: a\nval: a\nnames: [x, y]\nnc: 3\n", "nc is 3"),
        ("train: a\nval: a\nnames: [x, 1]\n", "non-empty text"),
        ("- just\n- a list\n", "not a mapping"),
    ],
)
def test_bad_data_yaml_raises_config_error(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_data_config(_write(tmp_path / "data.yaml", yaml_text))


def test_missing_listed_image_names_list_line(tmp_path: Path) -> None:
    _write(tmp_path / "train.txt", "images/gone.png\n")
    _write(tmp_path / "data.yaml", "train: train.txt\nval: train.txt\nnames: [x]\n")
    with pytest.raises(InputNotFoundError, match=r"train\.txt:1"):
        load_split(load_data_config(tmp_path / "data.yaml"), "train")


@pytest.mark.parametrize(
    "line",
    [
        "0 0.5 0.5 0.2",
        "0 0.5 0.5 0.2 0.2 0.1",
        "x 0.5 0.5 0.2 0.2",
        "0 0.5 abc 0.2 0.2",
        "2 0.5 0.5 0.2 0.2",
        "0 1.5 0.5 0.2 0.2",
        "0 0.5 0.5 0 0.2",
        "0 nan 0.5 0.2 0.2",
    ],
)
def test_malformed_label_line_raises_input_error(tmp_path: Path, line: str) -> None:
    _png(tmp_path / "images/a.png", 10, 10)
    labels = _write(tmp_path / "labels/a.txt", f"0 0.5 0.5 0.2 0.2\n{line}\n")
    _write(tmp_path / "data.yaml", "train: images\nval: images\nnames: [x, y]\n")
    with pytest.raises(InputError) as caught:
        load_split(load_data_config(tmp_path / "data.yaml"), "train")
    assert f"{labels}:2:" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_image_outside_images_folder_is_refused(tmp_path: Path) -> None:
    _png(tmp_path / "pics/a.png", 10, 10)
    _write(tmp_path / "data.yaml", "train: pics\nval: pics\nnames: [x]\n")
    with pytest.raises(InputError, match="no 'images' folder"):
        load_split(load_data_config(tmp_path / "data.yaml"), "train")


# --- COCO ---------------------------------------------------------------------------------------


def test_coco_round_trip(tmp_path: Path) -> None:
    coco = {
        "images": [
            {"id": 5, "file_name": "a.png", "width": 100, "height": 80},
            {"id": 9, "file_name": "sub/b.png"},
        ],
        "categories": [{"id": 7, "name": "mass"}, {"id": 3, "name": "nodule"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 7, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 3, "bbox": [0.5, 1.5, 2.0, 3.0]},
            {"id": 3, "image_id": 5, "category_id": 3, "bbox": [0, 0, 100, 80], "iscrowd": 1},
        ],
    }
    path = _write(tmp_path / "train.json", json.dumps(coco))
    data = load_coco(path, tmp_path / "images")
    assert data.class_names == ["nodule", "mass"]  # sorted category ids 3, 7
    a, b = data.records
    assert a.image_path == tmp_path / "images/a.png" and a.image_size == (80, 100)
    assert b.image_size is None and len(b) == 0
    back = np.concatenate([a.boxes[:, :2], a.boxes[:, 2:] - a.boxes[:, :2]], axis=1)
    np.testing.assert_allclose(back, [[10.0, 20.0, 30.0, 40.0], [0.5, 1.5, 2.0, 3.0]])
    assert a.labels.tolist() == [1, 0]

    coco["annotations"][0]["category_id"] = 4
    with pytest.raises(InputError, match="annotation 1: category_id 4"):
        load_coco(_write(tmp_path / "bad.json", json.dumps(coco)), tmp_path)


# --- VinBigData ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vinbig_dir(shared_data: Path) -> Path:
    return _need(shared_data, "cxr/vinbigdata_sample")


def test_vinbigdata_sample(vinbig_dir: Path) -> None:
    csv_path = vinbig_dir / "train_subset_12.csv"
    data = load_vinbigdata(
        csv_path, vinbig_dir / "images", orig_dims_csv=vinbig_dir / "orig_dims.csv"
    )
    stats = summarize(data)
    assert (stats["images"], stats["negatives"]) == (12, 7)
    assert sum(len(r) > 0 for r in data.records) == 5
    assert data.class_names[0] == "Aortic enlargement" and len(data.class_names) == 14
    assert data.class_names == list(VINBIGDATA_CLASS_NAMES)
    with csv_path.open() as handle:
        raw = Counter(row["class_name"] for row in csv.DictReader(handle))
    for name, fused in stats["boxes_per_class"].items():
        assert fused <= raw[name], name
    assert 0 < stats["boxes"] < sum(n for name, n in raw.items() if name != "No finding")
    for record in data.records:
        assert record.image_size == (1024, 1024) == read_image_size(record.image_path)
        assert (record.boxes >= 0).all() and (record.boxes <= 1024).all()
        assert (record.boxes[:, 2:] > record.boxes[:, :2]).all()


def test_vinbigdata_full_csv_gz_gives_same_records(vinbig_dir: Path) -> None:
    images, dims = vinbig_dir / "images", vinbig_dir / "orig_dims.csv"
    subset = load_vinbigdata(vinbig_dir / "train_subset_12.csv", images, orig_dims_csv=dims)
    full = load_vinbigdata(vinbig_dir / "vinbigdata_train_full.csv.gz", images, orig_dims_csv=dims)
    assert [r.image_path for r in full.records] == [r.image_path for r in subset.records]
    for a, b in zip(full.records, subset.records, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)


def _vin_csv(path: Path, rows: list[list[object]], compress: bool = False) -> Path:
    lines = [",".join(VIN_HEADER)] + [",".join(str(v) for v in row) for row in rows]
    text = "\n".join(lines) + "\n"
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_vinbigdata_three_radiologists_fuse_to_ensemble_boxes(tmp_path: Path) -> None:
    orig_rows, orig_cols = 2000, 1600
    boxes = {  # class_id -> one box per radiologist, overlapping
        3: [(400, 1000, 1200, 1400), (420, 980, 1180, 1420), (390, 1010, 1230, 1390)],
        0: [(700, 500, 900, 800), (710, 520, 890, 790), (690, 490, 905, 810)],
    }
    rows = [
        ["img", VINBIGDATA_CLASS_NAMES[c], c, f"R{k}", *box]
        for c, per_rad in boxes.items()
        for k, box in enumerate(per_rad)
    ]
    rows += [["neg", "No finding", 14, f"R{k}", "", "", "", ""] for k in range(3)]
    csv_path = _vin_csv(tmp_path / "train.csv.gz", rows, compress=True)
    _write(
        tmp_path / "dims.csv",
        f"image_id,dim0_height,dim1_width\nimg,{orig_rows},{orig_cols}\n"
        f"neg,{orig_rows},{orig_cols}\n",
    )
    _png(tmp_path / "png/img.png", 500, 800)  # a different scale per axis
    _png(tmp_path / "png/neg.png", 500, 800)
    data = load_vinbigdata(csv_path, tmp_path / "png", orig_dims_csv=tmp_path / "dims.csv")
    img, neg = data.records
    assert len(neg) == 0 and img.image_size == (500, 800)
    assert sorted(img.labels.tolist()) == [0, 3]  # one fused box per class

    scale = np.array([orig_cols, orig_rows] * 2, np.float64)
    per_rad = [[np.array(boxes[c][k]) / scale for c in (3, 0)] for k in range(3)]
    expected, _, labels = weighted_boxes_fusion(
        per_rad, [[1.0, 1.0]] * 3, [[3, 0]] * 3, iou_thr=0.5, skip_box_thr=0.0
    )
    for box, label in zip(expected, labels, strict=True):
        got = img.boxes[img.labels == int(label)][0]
        np.testing.assert_allclose(got, box * [800, 500, 800, 500], rtol=1e-5)

    with pytest.raises(ConfigError, match="orig_dims_csv"):
        load_vinbigdata(csv_path, tmp_path / "png")


def test_vinbigdata_dicom_keeps_original_pixels(tmp_path: Path) -> None:
    (tmp_path / "dcm").mkdir()
    write_dicom(tmp_path / "dcm/img.dicom", np.zeros((300, 200), np.uint16))
    csv_path = _vin_csv(tmp_path / "train.csv", [["img", "ILD", 5, "R1", 10, 20, 110, 220]])
    (record,) = load_vinbigdata(csv_path, tmp_path / "dcm").records
    assert record.image_size == (300, 200)
    np.testing.assert_allclose(record.boxes, [[10, 20, 110, 220]], rtol=1e-6)
    assert record.labels.tolist() == [5]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["img", "ILD", 5, "R1", 10, 20, 5, 220], "x_min < x_max"),
        (["img", "ILD", 5, "R1", "", 20, 5, 220], "not a number"),
        (["img", "ILD", 15, "R1", 10, 20, 50, 220], "class_id '15'"),
    ],
)
def test_vinbigdata_bad_row_names_line(tmp_path: Path, row: list[object], message: str) -> None:
    csv_path = _vin_csv(tmp_path / "train.csv", [["img", "ILD", 5, "R1", 1, 2, 3, 4], row])
    with pytest.raises(InputError, match=rf"train\.csv:3: .*{message}"):
        load_vinbigdata(csv_path, tmp_path)


# --- load_sample, records, summaries ------------------------------------------------------------


def test_load_sample_keeps_16_bit_and_scales_boxes_exactly(tmp_path: Path) -> None:
    path = _png(tmp_path / "ramp16.png", 300, 200, np.uint16)
    stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16
    boxes, labels = np.array([[20, 30, 100, 150]], np.float32), np.array([2], np.int64)
    record = DetectionRecord(path, boxes, labels, (300, 200))

    same, original = load_sample(record, 300)
    assert original == (300, 200) and same.image.dtype == np.float32
    np.testing.assert_array_equal(np.rint(same.image * 65535.0), stored)  # every 16-bit level
    np.testing.assert_array_equal(same.boxes, record.boxes)

    half, original = load_sample(record, 150)
    assert original == (300, 200) and half.image.shape == (150, 100)
    np.testing.assert_array_equal(half.boxes, [[10, 15, 50, 75]])
    assert half.labels.tolist() == [2]
    area = cv2.resize(same.image, (100, 150), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(half.image, area, atol=1e-6)
    assert len(np.unique(half.image)) > 256  # not quantised to 8 bits

    double, _ = load_sample(record, 600)
    np.testing.assert_allclose(double.boxes, [[40, 60, 200, 300]])


def test_load_sample_refuses_a_size_that_changed(tmp_path: Path) -> None:
    path = _png(tmp_path / "a.png", 30, 20)
    record = DetectionRecord(path, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), (40, 20))
    with pytest.raises(InputError, match="annotations assume 40 x 20"):
        load_sample(record, 64)


def test_header_size_follows_exif_rotation_like_read_image(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rotated.jpg"
    Image.new("L", (40, 20)).save(path, exif=exif)
    assert read_image_size(path) == read_image(path).pixels.shape == (40, 20)
    with pytest.raises(ConfigError, match="image_size"):
        load_sample(DetectionRecord(path, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)), 0)


def test_record_is_typed_and_read_only() -> None:
    record = DetectionRecord(Path("a.png"), [[1, 2, 3, 4]], [1])  # type: ignore[arg-type]
    assert record.boxes.dtype == np.float32 and record.labels.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        record.boxes[0, 0] = 5
    with pytest.raises(ValueError, match="1 boxes but 2 labels"):
        DetectionRecord(Path("a.png"), np.zeros((1, 4), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        DetectionRecord(Path("a.png"), np.zeros((2, 3), np.float32), np.zeros(2, np.int64))
