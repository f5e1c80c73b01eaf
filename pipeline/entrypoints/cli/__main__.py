"""`python -m pipeline.entrypoints.cli …`, as the tests and the dev harness run it."""

from pipeline.entrypoints.cli import main

if __name__ == "__main__":
    main()
