"""The per-frame pipeline: a frame in, faces with labels, scores, tracks and timings out."""
