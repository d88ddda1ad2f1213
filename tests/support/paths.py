from pathlib import Path

# The project's root: where the Makefile, the compose file and the packages are.
ROOT = Path(__file__).resolve().parents[2]
