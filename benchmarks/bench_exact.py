"""Thin wrapper: the benchmark lives in linearnets.bench.exact (also: linearnets bench exact)."""

from linearnets.bench.exact import main

if __name__ == "__main__":
    main()
