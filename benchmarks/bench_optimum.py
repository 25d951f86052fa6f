"""Thin wrapper: the benchmark lives in linearnets.bench.optimum (also: linearnets bench optimum)."""

from linearnets.bench.optimum import main

if __name__ == "__main__":
    main()
