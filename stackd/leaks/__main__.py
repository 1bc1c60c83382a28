import sys

from stackd.leaks.lister import main

sys.exit(main())
