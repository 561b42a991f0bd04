import sys

from pixsight.cli.main import main

sys.exit(main())
