"""Measure where MediaPipe's keypoints fall in FairFace chips (the alignment template in crops.py).

    python benchmarks/measure_chip_template.py ../shared/data/fairface

Prints the median (x, y) of right eye, left eye, nose tip and mouth centre as fractions of
the chip side over the FairFace val chips (padding 0.25), and the detection rate.
"""

import sys

import numpy as np
from rich.progress import track

from facescan.datasets import open_dataset
from facescan.detect import create_detector
from facescan.imageio import load_image


def main(root: str) -> None:
    samples = open_dataset(f"fairface:{root}", "val")
    detector = create_detector("mediapipe")
    points, found = [], 0
    for s in track(samples, description="detect"):
        img = load_image(s.path).pixels
        faces = detector.detect(img)
        if not faces:
            continue
        found += 1
        best = max(faces, key=lambda f: f.score)
        points.append(np.asarray(best.keypoints[:4]) / img.shape[1])
    med = np.median(np.stack(points), axis=0)
    print(f"detected in {found}/{len(samples)} chips ({found / len(samples):.1%})")
    for name, (x, y) in zip(["right_eye", "left_eye", "nose_tip", "mouth_center"], med):
        print(f"{name:13s} x={x:.3f} y={y:.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fairface")
