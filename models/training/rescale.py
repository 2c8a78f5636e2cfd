#!/usr/bin/python3
"""Resamples a dataset by one factor, as a microscope of another magnification or camera would show it.

    python3 rescale.py --scale 0.5 --src ../../../shared/data/bccd --out /tmp/bccd-0.5     # Pascal VOC: boxes too
    python3 rescale.py --scale 0.5 --src /tmp/val/pbc --out /tmp/pbc-0.5                   # class folders of images

A Pascal-VOC folder (JPEGImages/ and Annotations/) gets its boxes and sizes scaled with the images; any other folder
is copied image by image, its layout kept (`leuko evaluate classification --data` reads class folders). Images are
resampled with area averaging when made smaller and bicubic interpolation when made larger, and written as JPEG
(quality 92) or PNG as they were. For `leuko evaluate segmentation --voc` and `leuko evaluate classification --data`
on the result: the segmenter's lengths are physical, so its figures should not depend on the factor.
"""
import argparse
import os
import re

import cv2

IMAGES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')
BOX_FIELDS = re.compile(r'<(xmin|ymin|xmax|ymax|width|height)>\s*(\d+)\s*</\1>')


def resample(path, out, scale):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f'error: {path}: not an image OpenCV reads')
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if out.lower().endswith(('.jpg', '.jpeg')) else []
    if not cv2.imwrite(out, image, params):
        raise SystemExit(f'error: {out}: could not be written')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=float, required=True, help='factor on both sides, e.g. 0.5 for half the magnification')
    parser.add_argument('--src', required=True)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    if not 0.05 <= args.scale <= 10:
        raise SystemExit('error: --scale must be between 0.05 and 10')
    if os.path.exists(args.out):
        raise SystemExit(f'error: {args.out} exists: give a new folder')

    count = 0
    voc = os.path.isdir(os.path.join(args.src, 'JPEGImages')) and os.path.isdir(os.path.join(args.src, 'Annotations'))
    for root, _, files in os.walk(args.src):
        for name in sorted(files):
            path = os.path.join(root, name)
            out = os.path.join(args.out, os.path.relpath(path, args.src))
            if name.lower().endswith(IMAGES):
                resample(path, out, args.scale)
                count += 1
            elif voc and name.endswith('.xml'):
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(path) as f:
                    text = f.read()
                with open(out, 'w') as f:
                    f.write(BOX_FIELDS.sub(lambda m: f'<{m.group(1)}>{round(int(m.group(2)) * args.scale)}</{m.group(1)}>', text))
    print(f'{count} images resampled by {args.scale} into {args.out}')


if __name__ == '__main__':
    main()
