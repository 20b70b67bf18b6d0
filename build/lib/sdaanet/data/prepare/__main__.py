import sys

from sdaanet.data.prepare import main

sys.exit(main())
