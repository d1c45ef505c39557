"""``python -m insightray.training.intents --out FOLDER``."""

import sys

from insightray.training.intents.trainer import main

sys.exit(main())
