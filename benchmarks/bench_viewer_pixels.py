"""Memory and bytes of the viewer's ``/pixels`` answer for a blank 81-megapixel PNG.

Each path runs in a fresh Python process (peak RSS is per process): the level the service
sends now (:func:`insightray.serving.images.pixel_level`, 2,048 px a side) against the whole
image it sent before (``pixel_payload(viewer_values(image))``). Peak RSS growth is measured
from after the imports to after the answer is built.

Run: ``python benchmarks/bench_viewer_pixels.py --repeats 3``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

CODE = """
import resource, sys
from insightray.imaging import read_image
from insightray.imaging.upload import viewer_values
from insightray.serving import images
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = read_image(sys.argv[1], output="modality")
if sys.argv[2] == "level":
    payload = images.pixel_level(image)
else:
    payload = images.pixel_payload(viewer_values(image))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(payload.data), (after - before) // 1024)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", type=int, default=9000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "blank.png"
        cv2.imwrite(str(path), np.zeros((args.side, args.side), np.uint8))
        for mode in ("whole", "level"):
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run(
                    [sys.executable, "-c", CODE, str(path), mode],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                size, grown = (int(v) for v in out.stdout.split())
                runs.append(grown)
            print(f"{mode:5s}: {size / 2**20:6.1f} MiB sent, peak RSS growth "
                  f"{min(runs)}-{max(runs)} MiB over {args.repeats} runs")  # fmt: skip


if __name__ == "__main__":
    main()
