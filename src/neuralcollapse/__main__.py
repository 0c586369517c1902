"""`python -m neuralcollapse` is the same as the `neuralcollapse` console script."""

from neuralcollapse.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
