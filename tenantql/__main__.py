import sys

from tenantql.cli import main

sys.exit(main())
