"""Thin wrapper: the benchmark lives in linearnets.bench.stream (also: linearnets bench stream)."""

from linearnets.bench.stream import main

if __name__ == "__main__":
    main()
