"""``python -m slm_operator.gateway ARGS`` is ``slmctl gateway ARGS``."""

import sys

from slm_operator.gateway.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
