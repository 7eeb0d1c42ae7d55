"""``python -m nodes.agent VERB [ARGS]``; the one-file agent (build.py) runs the same."""

import sys

from nodes.agent.serve import main

sys.exit(main())
