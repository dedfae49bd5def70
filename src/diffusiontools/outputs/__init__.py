"""What the commands write: figures, Markdown and HTML tables, the NPZ sample files, and the
rules of writing them safely (``safe_writes``); no metric and no training in here, so training
and evaluation can both write with it."""
