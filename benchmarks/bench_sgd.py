"""Thin wrapper: the benchmark lives in linearnets.bench.sgd (also: linearnets bench sgd)."""

from linearnets.bench.sgd import main

if __name__ == "__main__":
    main()
