"""Train two models briefly and compare their samples side by side: a script version of the
notebook, for users who prefer scripts.

    python examples/train_and_compare.py --steps 300 --out runs/compare

Trains the quickstart UNet and the report's notebook CNN (model 1's settings) for the same number
of steps, samples each, and writes one evaluation table (metrics.md) comparing them.
"""

from __future__ import annotations

import argparse
import logging

import diffusiontools as dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--n", type=int, default=200, help="samples scored per model")
    parser.add_argument("--out", default="runs/compare", help="folder for the runs and the table")
    parser.add_argument("--tsne-reference", type=int, default=2000, help="test images in t-SNE")
    parser.add_argument(
        "--test-reference", type=int, default=10_000, help="test images behind classifier metrics"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the library's progress lines

    models = {}
    for name in ("quickstart", "model1"):
        # data.source = auto: the embedded MNIST subset where the full set cannot be had
        overrides = {"training.max_steps": args.steps, "data.source": "auto"}
        cfg = dt.load_config(name, overrides=overrides)
        models[name] = dt.train(cfg, f"{args.out}/{name}", overwrite=True)
        dt.show(models[name].sample(40, seed=0), nrow=10).save(f"{args.out}/{name}/samples.png")

    result = dt.evaluate(
        models,
        n_samples=args.n,
        tsne_reference=args.tsne_reference,
        test_reference=args.test_reference,
        out=f"{args.out}/evaluation",
        overwrite=True,  # as dt.train above: a re-run replaces the evaluation
    )
    print(result.table())


if __name__ == "__main__":
    main()
