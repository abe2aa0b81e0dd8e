"""The container's entry: hands over to the CLI, which reads the Action's INPUT_* variables."""

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main())
