"""Reporting: figures, Markdown and HTML tables, and the NPZ sample files; no metric and no
training in here, so training and evaluation can both draw with it."""
