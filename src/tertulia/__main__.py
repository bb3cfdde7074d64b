import sys

from tertulia.cli import main

sys.exit(main())
