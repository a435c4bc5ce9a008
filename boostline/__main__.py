import sys

from boostline.cli import main

sys.exit(main())
