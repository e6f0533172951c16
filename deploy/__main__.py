"""``python -m deploy {deploy,rollback,status} HOST...``; see :mod:`deploy.cli`."""

import sys

if sys.version_info < (3, 11):  # noqa: UP036 -- checked before importing code that needs 3.11
    sys.exit(f"deploy: error: needs Python 3.11 or newer, this is {sys.version.split()[0]}")

from deploy.cli import main  # noqa: E402

raise SystemExit(main())
