"""`python -m bitnet.server --model PATH ...`"""

import sys

from bitnet.server import main

sys.exit(main())
