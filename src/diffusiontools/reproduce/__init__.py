"""The report's study end to end at a chosen scale: ``pipeline.reproduce(scales.get_scale("cpu"),
out, device)``. The package imports nothing itself, so that the command line reads the scales
without importing torch."""
