"""`python -m csim ...` = the `csim` console script (used where the script is not on PATH)."""

from csim.cli import main

if __name__ == "__main__":
    main()
