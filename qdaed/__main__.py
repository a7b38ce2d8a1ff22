import sys

from qdaed.cli import main

sys.exit(main())
