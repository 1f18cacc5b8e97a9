"""Media layer: video probe/decode, cuts, sampling, image I/O, dedup, blur, contact sheets.

Plain Python over PyAV, Pillow, OpenCV (headless) and imagehash; see docs/media.md.
"""
