"""PACS integration costs: SR creation per study, and studies per minute through the listener.

1. SR overhead: for one real chest radiograph, the median time of detection (the reference,
   ``predict_paths``) and of building and writing its TID 1500 SR (``write_sr``), each
   repeated.
2. Ingest privacy: the median time to de-identify and seal one arrival (``Vault.admit``), to
   open it again (``Vault.open``) and to restore the SR's identifiers (``Vault.restore``),
   against the same detection reference.
3. Listener throughput: a real Orthanc (Debian's package, free loopback ports) and the C-STORE
   listener; N copies of the radiograph, each a new study, are C-STOREd into the listener, which
   analyses each and STOWs its SR into Orthanc. Reported: studies per minute from the first
   send to the last SR stored, against the detector alone on the same N files (the reference,
   measured in the same run, before and after the listener, averaged). Arrivals are
   de-identified and sealed on ingest, as in production.

Usage:
    PYTHONPATH=. python benchmarks/bench_pacs.py [--studies 8] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_cli_startup import cpu_flags  # noqa: E402

from insightray.config import data_root  # noqa: E402
from insightray.engine import load_predictor  # noqa: E402
from insightray.imaging.dicom import read_dataset  # noqa: E402
from insightray.pacs.dimse import send_cstore  # noqa: E402
from insightray.pacs.listener import Listener  # noqa: E402
from insightray.pacs.pipeline import Analyst  # noqa: E402
from insightray.pacs.routing import routing_from_dict  # noqa: E402
from insightray.pacs.sr import build_sr, write_sr  # noqa: E402
from insightray.pacs.vault import Vault  # noqa: E402
from insightray.serving.storage.crypto import KeyRing  # noqa: E402
from tests.pacs.orthanc import free_port, run_orthanc  # noqa: E402

CHEST = "dicom/cr_chest_RG1_UNCI.dcm"


def timed(call: object, repeats: int) -> float:
    """Median seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sr_overhead(chest: Path, repeats: int, folder: Path) -> float:
    predictor = load_predictor(task="detection")
    predictor.predict_paths([str(chest)])  # warm-up
    result = predictor.predict_paths([str(chest)])[0]
    detect_s = timed(lambda: predictor.predict_paths([str(chest)]), repeats)
    write_sr(chest, folder, detection=(result, predictor.card))  # warm-up
    sr_s = timed(lambda: write_sr(chest, folder, detection=(result, predictor.card)), repeats)
    header = read_dataset(chest, header_only=True)
    build_s = timed(lambda: build_sr(header, detection=(result, predictor.card)), repeats)
    print(
        f"SR overhead: detection {detect_s * 1000:.0f} ms (reference), SR build+write "
        f"{sr_s * 1000:.1f} ms = {100 * sr_s / detect_s:.1f} % of detection, of which "
        f"building (highdicom) {build_s * 1000:.1f} ms ({len(result.detections)} boxes, "
        f"median of {repeats})"
    )
    return detect_s


def ingest_overhead(chest: Path, repeats: int, folder: Path, detect_s: float) -> None:
    predictor = load_predictor(task="detection")
    result = predictor.predict_paths([str(chest)])[0]
    dataset = read_dataset(chest)
    vault = Vault(folder / "inbox", KeyRing([os.urandom(32)]), b"benchmark salt")
    path = vault.admit(dataset)  # warm-up
    admit_s = timed(lambda: vault.admit(dataset), repeats)
    open_s = timed(lambda: vault.open(path), repeats)
    arrival = vault.open(path)
    sr = build_sr(arrival.header(), detection=(result, predictor.card))
    restore_s = timed(lambda: vault.restore(sr, arrival), repeats)
    total = admit_s + open_s + restore_s
    print(
        f"ingest privacy: de-identify + seal {admit_s * 1000:.1f} ms, open {open_s * 1000:.1f} "
        f"ms, restore the SR's identifiers {restore_s * 1000:.1f} ms = {total * 1000:.1f} ms "
        f"= {100 * total / detect_s:.1f} % of detection {detect_s * 1000:.0f} ms "
        f"({path.stat().st_size / 1e6:.1f} MB sealed, median of {repeats})"
    )


def listener_throughput(chest: Path, studies: int, folder: Path) -> None:
    source = read_dataset(chest)
    copies = []
    for index in range(studies):
        copy = read_dataset(chest)
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            setattr(copy, keyword, f"{getattr(source, keyword)}.{index + 1}")
        copies.append(copy)
    files = []
    for index, copy in enumerate(copies):
        files.append(folder / f"copy{index}.dcm")
        copy.save_as(files[-1], enforce_file_format=True)
    predictor = load_predictor(task="detection")
    predictor.predict_paths([str(files[0])])  # warm-up

    def alone() -> float:
        started = time.perf_counter()
        for path in files:
            predictor.predict_paths([str(path)])
        return time.perf_counter() - started

    before_s = alone()

    with run_orthanc(folder / "orthanc") as orthanc:
        routing = routing_from_dict(
            {
                "rules": [
                    {
                        "name": "all",
                        "task": "detection",
                        "destination": {"dicomweb": orthanc.dicomweb_url},
                    }
                ],
                "dead_letter": str(folder / "dead"),
            }
        )
        # Arrivals are de-identified and sealed on ingest, as in production (its cost is in).
        vault = Vault(folder / "inbox", KeyRing([os.urandom(32)]), b"benchmark salt")
        analyst = Analyst(routing, vault, outbox=folder / "outbox")
        analyst.handle(vault.admit(read_dataset(files[0])))  # loads the model once
        listener = Listener(analyst, vault, port=free_port(), allowed=["MODALITY"])
        listener.start()
        try:
            started = time.perf_counter()
            for copy in copies:  # one association per study, as a modality sends them
                send_cstore(
                    [copy],
                    host="127.0.0.1",
                    port=listener.address[1],
                    called_aet="INSIGHTRAY",
                    calling_aet="MODALITY",
                )
            if not listener.wait_idle(600):
                raise SystemExit("the listener did not finish within 600 s")
            through_s = time.perf_counter() - started
        finally:
            listener.stop()
    alone_s = (before_s + alone()) / 2  # before and after the listener: load drifts here
    sent = sum(outcome.status == "sent" for outcome in listener.outcomes)
    print(
        f"listener: {studies} studies (C-STORE in, detection, SR by STOW-RS into Orthanc, "
        f"{sent} sent) in {through_s:.1f} s = {60 * studies / through_s:.1f} studies/min; "
        f"detector alone on the same files: {60 * studies / alone_s:.1f} studies/min "
        f"(ratio {alone_s / through_s:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    chest = data_root() / CHEST
    print(f"machine: {cpu_flags()}; torch threads {args.threads}")
    with tempfile.TemporaryDirectory() as folder:
        detect_s = sr_overhead(chest, args.repeats, Path(folder) / "sr")
        ingest_overhead(chest, args.repeats, Path(folder), detect_s)
        listener_throughput(chest, args.studies, Path(folder))


if __name__ == "__main__":
    main()
