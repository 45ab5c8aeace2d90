"""`python -m stress.agent`: run the agent child (see `stress.agent._child`)."""

import sys

from stress.agent._child import main

sys.exit(main())
