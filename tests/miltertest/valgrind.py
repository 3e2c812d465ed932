#!/usr/bin/python3
"""valgrind.py - tests/miltertest/run.py with spfguard under valgrind's
memcheck: every script, then no memory error and no definite or indirect
leak at exit (see run.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run.main(valgrind=True))
