"""`python -m asar ...` runs `asar-cli ...` (the torchrun relaunch uses `python -P -m asar`)."""
from cli import main

if __name__ == "__main__":
    main()
