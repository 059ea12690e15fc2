"""`python -m devhost start [--script-root DIR] [--port 7071]`."""

from devhost.cli import main

raise SystemExit(main())
