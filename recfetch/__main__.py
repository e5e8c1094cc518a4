"""Entry point for `python -m recfetch`."""

from recfetch.cli import main

if __name__ == "__main__":
    main()
